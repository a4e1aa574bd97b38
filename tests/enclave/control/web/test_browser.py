"""An admin provisions a project end to end in a real browser: Playwright drives Debian's
Chromium against the app served by a real HTTP server thread.

The set-up (``tests.browser``) installs Chromium with apt when it is missing (as root); it never
downloads a browser build of Playwright's own. Every step waits on what the page shows, never
on time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import BrowserContext, Page, expect
from werkzeug.serving import make_server

from enclave.control.context import Context
from enclave.control.db import make_engine, upgrade
from enclave.control.service import people
from enclave.control.web import create_app
from enclave.settings import Settings
from tests.browser import browser_fixture  # noqa: F401 - provides the `browser` fixture
from tests.enclave.control.web.conftest import PASSWORD, SECRET_KEY

pytestmark = pytest.mark.browser

ADMIN, CUSTODIAN = "ada@enclave.example", "cas@agency.example"


@pytest.fixture
def base_url(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """The app on a free port of 127.0.0.1, with an admin and a custodian who can log in;
    yields the base URL and their TOTP secrets."""
    url = f"sqlite:///{tmp_path / 'enclave.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    ctx = Context(engine=engine, data_dir=tmp_path / "data")
    people.bootstrap_admin(ctx, email=ADMIN, name="Ada Admin", organisation="Enclave")
    people.create_person(
        ctx,
        ADMIN,
        email=CUSTODIAN,
        name="Cas Custodian",
        organisation="Health Agency",
        roles=["data_custodian"],
    )
    secrets = {}
    for email in (ADMIN, CUSTODIAN):
        people.set_password(ctx, ADMIN, email, PASSWORD)
        secrets[email] = people.enrol_totp(ctx, ADMIN, email).secret
    settings = Settings(data_dir=ctx.data_dir, database_url=url, secret_key=SECRET_KEY)
    server = make_server("127.0.0.1", 0, create_app(settings, context=ctx), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", secrets
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        ctx.close()


def log_in(page: Page, base: str, email: str, code: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Code from your authenticator app").fill(code)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Welcome")


def log_out(page: Page) -> None:
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()


def test_admin_provisions_a_project_end_to_end(
    browser: BrowserContext, base_url: tuple[str, dict[str, str]]
) -> None:
    base, secrets = base_url
    page = browser.pages[0] if browser.pages else browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    today = date.today()
    start, end = str(today), str(today + timedelta(days=365))

    log_in(page, base, ADMIN, pyotp.TOTP(secrets[ADMIN]).now())

    page.get_by_role("link", name="People").first.click()
    page.get_by_label("Email").fill("rae@uni.example")
    page.get_by_label("Full name").fill("Rae Researcher")
    page.get_by_label("Organisation").fill("University")
    page.get_by_label("researcher", exact=True).check()
    page.get_by_role("button", name="Create person").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Rae Researcher")
    page.get_by_label("Scheme").fill("Safe Researcher")
    page.get_by_label("Certificate reference").fill("SR-1234")
    page.get_by_label("Issued on").fill(start)
    page.get_by_label("Expires on").fill(str(today + timedelta(days=700)))
    page.get_by_role("button", name="Accredit").click()
    expect(page.get_by_role("cell", name="SR-1234")).to_be_visible()

    page.get_by_role("link", name="Projects").first.click()
    page.get_by_label("Slug").fill("beds")
    page.get_by_label("Title").fill("Hospital bed use")
    page.get_by_label("Lay summary").fill("How long people stay in hospital, and why")
    page.get_by_label("Public benefit").fill("Better planning of hospital capacity")
    page.get_by_label("Organisation").fill("University")
    page.get_by_label("Purpose category").select_option("health_research")
    page.get_by_label("Start date").fill(start)
    page.get_by_label("End date").fill(end)
    page.get_by_label("Legal basis").fill("Statistics and Registration Service Act 2007 s.39")
    page.get_by_label("Ethics approval reference").fill("ETH-2026-17")
    page.get_by_label("Data-sharing agreement reference").fill("DSA-88")
    page.get_by_role("button", name="Propose project").click()
    state = page.locator("#project-state")
    expect(state).to_have_text("proposed")
    page.get_by_role("button", name="Approve").click()
    expect(state).to_have_text("approved")
    page.get_by_role("button", name="Activate").click()
    expect(state).to_have_text("active")

    page.get_by_role("link", name="Datasets").first.click()
    page.get_by_label("Slug").fill("hes")
    page.get_by_label("Name", exact=True).fill("Hospital Episode Statistics")
    page.get_by_label("Source agency").fill("Health Agency")
    page.get_by_label("Description").fill("Admitted patient care")
    page.get_by_label("Version (sha256 of the content)").fill("ab" * 32)
    page.get_by_label("Custodian's email").fill(CUSTODIAN)
    page.get_by_label("research into health, care and their determinants").check()
    page.get_by_label("Variables").fill(
        "name,sensitivity,description\nnhs_number,direct_identifier,\n"
        "age_band,quasi_identifier,\nlength_of_stay,other,days"
    )
    page.get_by_role("button", name="Register dataset").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Hospital Episode Statistics")

    page.goto(f"{base}/admin/projects/beds")
    page.get_by_label("Dataset").select_option("hes")
    page.get_by_label("Variables").fill("age_band, length_of_stay")
    page.get_by_role("button", name="Request grant").click()
    expect(page.get_by_role("status")).to_contain_text("Requested hes for beds")
    log_out(page)

    log_in(page, base, CUSTODIAN, pyotp.TOTP(secrets[CUSTODIAN]).now())
    expect(page.get_by_text("beds asks for hes")).to_be_visible()
    page.get_by_role("link", name="Grants").first.click()
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_contain_text("is now approved")
    log_out(page)

    # The admin's first code is spent; the next step's code is accepted (one step of drift).
    log_in(page, base, ADMIN, pyotp.TOTP(secrets[ADMIN]).at(int(time.time()) + 30))
    page.goto(f"{base}/admin/projects/beds")
    page.get_by_label("Member's email").fill("rae@uni.example")
    page.get_by_label("Member's role").select_option("researcher")
    page.get_by_role("button", name="Add member").click()
    expect(page.get_by_role("status")).to_contain_text("Added rae@uni.example as researcher.")
    expect(page.get_by_role("cell", name="Rae Researcher")).to_be_visible()
    log_out(page)

    page.goto(f"{base}/register")
    entry = page.locator("#project-beds")
    expect(entry.get_by_role("heading")).to_have_text("Hospital bed use")
    expect(entry).to_contain_text("Hospital Episode Statistics (Health Agency)")
    expect(entry).not_to_contain_text("rae@uni.example")
    assert problems == [], problems
