"""The whole airlock in a real browser: Playwright drives Debian's Chromium (``tests.browser``
installs it with apt when missing) against the queue served by a real HTTP server thread.

A researcher opens a request, uploads a table the checker fails (with its record and recipe)
and an HTML report with a script, describes the group, asks for an exception and submits.
Checker A sees the failing cell highlighted with the rule on hover, finds the report's script
inert in its sandboxed frame, cannot approve without a comment, approves with one and
submits. Checker B reviews blind (A's vote is not shown), approves, and once both are in sees
A's vote (consolidation) and releases. The release worker copies the snapshot out; the
researcher downloads the released file, byte for byte the reviewed one. Every step waits on
what the page shows, never on time.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import BrowserContext, Dialog, Page, expect
from werkzeug.serving import make_server

from enclave.control.context import Context
from enclave.control.db import make_engine
from enclave.control.db import upgrade as upgrade_control
from enclave.control.service import people
from enclave.settings import Settings
from output_checker.queue import release, service
from output_checker.queue.db import upgrade as upgrade_queue
from output_checker.queue.web import create_app
from tests.browser import browser_fixture  # noqa: F401 - provides the `browser` fixture
from tests.enclave.control.web.conftest import PASSWORD, SECRET_KEY
from tests.output_checker.queue.factories import (
    QueueWorld,
    distinct,
    failing_output,
    make_queue_world,
)

pytestmark = pytest.mark.browser


@dataclass(frozen=True)
class Site:
    base: str
    ctx: Context
    qw: QueueWorld
    secrets: dict[str, str]

    def code(self, email: str, step: int = 0) -> str:
        """A TOTP code of ``email`` ``step`` steps ahead (a code is accepted once)."""
        return pyotp.TOTP(self.secrets[email]).at(int(time.time()) + 30 * step)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    url = f"sqlite:///{tmp_path / 'enclave.sqlite3'}"
    engine = make_engine(url)
    upgrade_control(engine)
    upgrade_queue(engine)
    ctx = Context(engine=engine, data_dir=tmp_path / "data")
    qw = make_queue_world(ctx)
    secrets = {}
    for email in (qw.author, qw.checker_a, qw.checker_b):
        people.set_password(ctx, qw.admin, email, PASSWORD)
        secrets[email] = people.enrol_totp(ctx, qw.admin, email).secret
    settings = Settings(data_dir=ctx.data_dir, database_url=url, secret_key=SECRET_KEY)
    server = make_server("127.0.0.1", 0, create_app(settings, context=ctx), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Site(f"http://127.0.0.1:{server.server_port}", ctx, qw, secrets)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        ctx.close()


def log_in(page: Page, site: Site, email: str, step: int = 0) -> None:
    page.goto(f"{site.base}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Code from your authenticator app").fill(site.code(email, step))
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Review queue")


def log_out(page: Page) -> None:
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()


def flash(page: Page) -> str:
    status = page.locator(".flash").first
    expect(status).to_be_visible()
    return status.inner_text()


def test_researcher_to_checkers_to_release_to_download(
    browser: BrowserContext, site: Site, tmp_path: Path
) -> None:
    qw = site.qw
    page = browser.pages[0] if browser.pages else browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    asked: list[str] = []

    def confirm(dialog: Dialog) -> None:  # the questions before submit, release...
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", confirm)
    output = distinct(failing_output(qw))
    table, record = tmp_path / output.name, tmp_path / "record.json"
    recipe = tmp_path / "recipe.json"
    table.write_bytes(output.data)
    record.write_text(json.dumps(output.record))
    recipe.write_text(json.dumps(output.recipe))
    report = tmp_path / "report.html"
    report.write_text(
        "<h1>Report</h1><script>document.body.setAttribute('data-ran', 'yes')</script>"
    )

    # The researcher prepares and submits.
    log_in(page, site, qw.author)
    page.get_by_label("Title").fill("Admissions by age")
    page.get_by_role("button", name="Open request").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Admissions by age")
    page.get_by_label("File", exact=True).set_input_files(table)
    page.get_by_label("Group", exact=True).fill("tables")
    page.get_by_label("Checker record (manifest JSON, for outputs)").set_input_files(record)
    page.get_by_label("Recipe (JSON, to re-derive a table from the data)").set_input_files(recipe)
    page.get_by_label("Exception request (if the checks fail)").fill("The 90+ band is needed")
    page.get_by_role("button", name="Add file").click()
    assert flash(page) == "File added."
    page.get_by_label("File", exact=True).set_input_files(report)
    page.get_by_label("Kind").select_option("supporting")
    page.get_by_label("Group", exact=True).fill("tables")
    page.get_by_role("button", name="Add file").click()
    assert flash(page) == "File added."
    page.get_by_text("Describe this group").click()
    page.get_by_label("What these files are").fill("Admissions by region and age band, 2024")
    page.get_by_label("Disclosure controls applied").fill("Threshold 10; the 90+ band kept")
    page.get_by_role("button", name="Save description").click()
    assert flash(page) == "Group tables described."
    page.get_by_role("button", name="Submit for review").click()
    assert flash(page) == "Submitted for review."
    expect(page.locator("#request-status")).to_have_text("submitted")
    request_url = page.url
    log_out(page)

    # Checker A reviews: the failing cell is highlighted, the report's script is inert.
    log_in(page, site, qw.checker_a)
    page.get_by_role("link", name="Admissions by age").click()
    expect(page.locator("#blinded")).to_be_visible()
    page.get_by_role("link", name="report.html").click()
    frame = page.frame_locator("iframe.content-frame")
    expect(frame.get_by_role("heading", name="Report")).to_be_visible()
    expect(frame.locator("body")).not_to_have_attribute("data-ran", "yes")
    sandbox = page.locator("iframe.content-frame").get_attribute("sandbox")
    assert sandbox is not None and "allow-scripts" not in sandbox
    page.goto(request_url)
    page.get_by_role("link", name=output.name).click()
    failing = page.locator("td.cell-fail")
    expect(failing).to_have_count(1)
    expect(failing).to_have_text("3")
    expect(failing).to_have_attribute("title", re.compile(r"^threshold fail .*n=3; evidence: "))
    failing.hover()
    expect(page.locator("td.cell-review")).to_have_count(3)
    page.get_by_role("button", name="Approve").click()
    assert "comment" in flash(page)  # an override of the server's fail needs a justification
    expect(page.locator("#my-vote")).to_have_text("undecided")
    page.get_by_label("Comment (required to approve").fill("3 admissions over 90: safe here")
    page.get_by_role("button", name="Approve").click()
    assert flash(page) == "Your vote: approved."
    page.get_by_role("link", name="Back to the request").click()
    page.get_by_role("button", name="Submit review").click()
    assert flash(page) == "Review submitted."
    log_out(page)

    # Checker B reviews blind, then consolidates and releases.
    log_in(page, site, qw.checker_b)
    page.goto(request_url)
    expect(page.locator("#blinded")).to_be_visible()
    page.get_by_role("link", name=output.name).click()
    votes = page.locator("#votes")
    expect(votes).to_contain_text("No votes you may see.")
    expect(votes).not_to_contain_text(qw.checker_a)
    page.get_by_label("Comment (required to approve").fill("Agree: not disclosive")
    page.get_by_role("button", name="Approve").click()
    assert flash(page) == "Your vote: approved."
    page.get_by_role("link", name="Back to the request").click()
    page.get_by_role("button", name="Submit review").click()
    expect(page.locator("#request-status")).to_have_text("reviewed")
    expect(page.locator("#blinded")).to_have_count(0)
    page.get_by_role("link", name=output.name).click()
    expect(page.locator("#votes")).to_contain_text(qw.checker_a)  # consolidation: both votes
    expect(page.locator("#votes")).to_contain_text("3 admissions over 90: safe here")
    page.get_by_role("link", name="Back to the request").click()
    page.get_by_label("Release comment").fill("Two approvals; exception justified.")
    page.get_by_role("button", name="Release files").click()
    assert flash(page) == "Approved: 1 file(s) will be released."
    expect(page.locator("#request-status")).to_have_text("approved")
    log_out(page)

    # The system copies the reviewed snapshot out.
    (outcome,) = release.release_approved(site.ctx)
    assert outcome.status == "released"

    # The researcher downloads the released file.
    log_in(page, site, qw.author, step=1)
    page.goto(request_url)
    expect(page.locator("#request-status")).to_have_text("released")
    with page.expect_download() as download:
        page.get_by_role("link", name=f"Download {output.name}").click()
    saved = tmp_path / "downloaded.csv"
    download.value.save_as(saved)
    rid = request_url.rsplit("/", 1)[1]
    detail = service.get_request(site.ctx, qw.checker_a, rid)
    (file_id,) = [f.id for f in detail.files if f.name == output.name]
    reviewed = service.download(site.ctx, qw.checker_a, rid, file_id).data
    assert saved.read_bytes() == reviewed == output.data
    assert asked and all("?" in question for question in asked)
    blocked = [p for p in problems if p.startswith("Blocked script execution") and "sandboxed" in p]
    assert blocked, "the report's script was not even attempted"  # and the browser refused it
    assert [p for p in problems if p not in blocked] == [], problems
