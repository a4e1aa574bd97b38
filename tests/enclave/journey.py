"""The researcher's whole journey through the real UI of a running ``enclave up``, in Debian's
Chromium (``tests.browser`` installs it when missing), one browser context per person.

Ada logs in to the hub with password and TOTP, opens the project's server, creates a notebook
from JupyterLab's launcher, types a cell that makes a table with ``enclave.analysis`` and
finalises it into her outbox, and runs it with Shift+Enter. The outbox watcher turns the
bundle into a pending request, which she submits in the review queue (reached through the
hub's OAuth). Two output checkers log in to the hub the same way; each approves the table
and submits a review; the second releases. The release worker copies the file out and Ada
downloads it from her own browser, outside the sandbox. On the way the journey tries what
should be refused: the table over the server's ``/files/``, the released file and the
checkers' download before the release, a checker's server for the project.

``walk`` never raises: what it saw, the step that failed and a screenshot of that page are
returned, so the stack is still stopped in order and the other tests still report.
"""

from __future__ import annotations

import re
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pyotp
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect, sync_playwright

from tests.browser import CHROMIUM_ARGS, chromium

QUEUE = "/services/review-queue"
OUTPUT = "people_by_sex"
TABLE = f"{OUTPUT}.csv"
SPAWN_TIMEOUT_MS = 120_000
CELL_TIMEOUT_MS = 180_000
RELEASE_TIMEOUT = 150.0  # the release worker wakes every 60 s
WATCH_TIMEOUT = 60.0  # the outbox watcher scans every 5 s
SHOWN_MS = 20_000  # what a page shows after a queue action (the server re-checks outputs)


@dataclass(frozen=True)
class Account:
    username: str
    password: str
    totp_secret: str


@dataclass
class Journey:
    """What the journey saw; ``error`` names the step that failed, if one did."""

    title: str = ""
    cell_output: str = ""
    bundle: str = ""
    files_status: int = 0  # the table over the session's /files/, from Ada's browser
    statuses: list[str] = field(default_factory=list)  # the request's, as Ada saw them
    early_release_status: int = 0  # the released file's URL before the release
    early_review_download_status: int = 0  # the checkers' download URL, asked by Ada
    checker_spawn_text: str = ""  # what a checker is told asking for the project's server
    downloaded: bytes = b""
    seconds: dict[str, float] = field(default_factory=dict)
    error: str = ""
    screenshot: Path | None = None


def cell_code(title: str) -> str:
    """What Ada types: one statement a line (the editor indents nothing)."""
    return "\n".join(
        [
            "import enclave.analysis as ea",
            'people = ea.load("health-demographics")',
            'ea.pivot_table(people, values="birth_year", index="sex", aggfunc="count")',
            f'ea.rename_output("output_0", "{OUTPUT}")',
            f'ea.add_comments("{OUTPUT}", "People in the health register, by sex.")',
            f'bundle = ea.finalise(title="{title}")',
            'print("finalised", bundle.name)',
        ]
    )


def next_code(secret: str) -> str:
    """The code of the next 30-s step: a code is accepted once and an earlier login of the
    same person may have used this step's (the hub accepts one step either side)."""
    return pyotp.TOTP(secret).at(int(time.time()) + 30)


class StepFailed(Exception):
    """A step's failure, named for the report (the cause is chained)."""

    def __init__(self, step: str) -> None:
        super().__init__(step)
        self.step = step


class Walk:
    """The steps, each timed and named for the report."""

    def __init__(self, base: str, browser: Browser, journey: Journey) -> None:
        self.base = base
        self.browser = browser
        self.journey = journey
        self.page: Page | None = None  # the page of the step running, for the screenshot

    @contextmanager
    def step(self, name: str, page: Page) -> Iterator[None]:
        self.page = page
        started = time.monotonic()
        try:
            yield
        except Exception as error:
            raise StepFailed(name) from error
        self.journey.seconds[name] = round(time.monotonic() - started, 1)

    def person(self) -> Page:
        context: BrowserContext = self.browser.new_context(accept_downloads=True)
        context.set_default_timeout(30_000)
        # every page of the person accepts "Submit this request for review?" and the like
        context.on("dialog", lambda dialog: dialog.accept())
        return context.new_page()

    def hub_login(self, page: Page, account: Account) -> None:
        page.goto(f"{self.base}/hub/login")
        page.get_by_label("Username:").fill(account.username)
        page.get_by_label("Password:").fill(account.password)
        page.get_by_label("Code from your authenticator app:").fill(next_code(account.totp_secret))
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(r"/hub/home"))

    def queue_login(self, page: Page) -> None:
        """Into the queue through the hub's OAuth: the hub knows the person already."""
        page.goto(f"{self.base}{QUEUE}/")
        page.get_by_role("link", name="Log in with JupyterHub").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Review queue", timeout=SHOWN_MS)

    def flash(self, page: Page, text: str) -> None:
        expect(page.locator(".flash").first).to_have_text(text, timeout=SHOWN_MS)


def reload_until(page: Page, shown: Locator, timeout: float) -> None:
    """Reload ``page`` until ``shown`` matches something (queue pages do not update by
    themselves: the watcher and the release worker act in the background)."""
    deadline = time.monotonic() + timeout
    while not shown.count():
        if time.monotonic() > deadline:
            raise AssertionError(f"not shown within {timeout:.0f} s")
        page.wait_for_timeout(1000)
        page.reload()


def walk(
    base: str, researcher: Account, checkers: tuple[Account, Account], project: str, shots: Path
) -> Journey:
    journey = Journey(title=f"People by sex, journey {uuid.uuid4().hex[:8]}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium(), args=CHROMIUM_ARGS, headless=True
        )
        steps = Walk(base, browser, journey)
        try:
            _walk(steps, researcher, checkers, project)
        except Exception as error:
            step = "between steps"
            cause: BaseException = error
            if isinstance(error, StepFailed) and error.__cause__ is not None:
                step, cause = error.step, error.__cause__
            lines = traceback.format_exception_only(type(cause), cause)
            journey.error = f"{step}: {''.join(lines).strip()[:1500]}"
            if steps.page is not None:
                journey.screenshot = shots / "journey-failed.png"
                try:
                    steps.page.screenshot(path=str(journey.screenshot), full_page=True)
                except Exception:  # the page may be gone with the failure
                    journey.screenshot = None
        finally:
            browser.close()
    return journey


def _walk(steps: Walk, ada: Account, checkers: tuple[Account, Account], project: str) -> None:
    lab = steps.person()
    _analyse(steps, lab, ada, project)
    queue = lab.context.new_page()
    request_url = _submit(steps, queue)
    for number, checker in enumerate(checkers, start=1):
        _review(steps, number, checker, project, request_url)
    _download(steps, queue, request_url)
    lab.context.close()


def _analyse(steps: Walk, lab: Page, ada: Account, project: str) -> None:
    """Ada, in JupyterLab: a notebook from the launcher, one cell typed and run."""
    base, journey = steps.base, steps.journey
    with steps.step("researcher logs in to the hub with TOTP", lab):
        steps.hub_login(lab, ada)
    with steps.step("the project's sandboxed server starts", lab):
        lab.goto(f"{base}/hub/spawn/{ada.username}/{project}")
        lab.wait_for_url(
            re.compile(rf"/user/{ada.username}/{project}/lab"), timeout=SPAWN_TIMEOUT_MS
        )
        expect(lab.locator('.jp-LauncherCard[data-category="Notebook"]').first).to_be_visible(
            timeout=SPAWN_TIMEOUT_MS
        )
    with steps.step("a notebook cell using enclave.analysis runs and finalises", lab):
        lab.locator('.jp-LauncherCard[data-category="Notebook"]').first.click()
        lab.locator(".jp-NotebookPanel:visible .jp-Cell .cm-content").first.click()
        lab.keyboard.type(cell_code(journey.title))
        lab.keyboard.press("Shift+Enter")
        output = lab.locator(".jp-NotebookPanel:visible .jp-OutputArea").first
        expect(output).to_contain_text(re.compile(r"finalised \S+|Error"), timeout=CELL_TIMEOUT_MS)
        journey.cell_output = output.inner_text()
        found = re.search(r"finalised (\S+)", journey.cell_output)
        assert found, journey.cell_output[-1500:]
        journey.bundle = found.group(1)
    with steps.step("the table over the server's /files/ is refused", lab):
        files = f"{base}/user/{ada.username}/{project}/files/outbox/{journey.bundle}/{TABLE}"
        journey.files_status = lab.request.get(files).status


def _submit(steps: Walk, queue: Page) -> str:
    """Ada, in the queue: the watcher's pending request submitted; returns its URL."""
    journey = steps.journey
    with steps.step("the outbox watcher makes a pending request; the researcher submits", queue):
        steps.queue_login(queue)
        reload_until(queue, queue.get_by_role("link", name=journey.title), WATCH_TIMEOUT)
        queue.get_by_role("link", name=journey.title).click()
        journey.statuses.append(queue.locator("#request-status").inner_text())
        queue.get_by_role("button", name="Submit for review").click()
        steps.flash(queue, "Submitted for review.")
        journey.statuses.append(queue.locator("#request-status").inner_text())
    request_url = queue.url
    with steps.step("nothing downloads before the release", queue):
        href = queue.get_by_role("link", name=TABLE).get_attribute("href") or ""
        file_id = href.rstrip("/").rsplit("/", 1)[-1]
        early = queue.request.get(f"{steps.base}{QUEUE}/releases/{file_id}/download")
        journey.early_release_status = early.status
        review_copy = queue.request.get(f"{request_url}/files/{file_id}/download")
        journey.early_review_download_status = review_copy.status
    return request_url


def _review(steps: Walk, number: int, checker: Account, project: str, request_url: str) -> None:
    """Checker ``number`` approves and submits a review; the second one also releases."""
    base, journey = steps.base, steps.journey
    page = steps.person()
    with steps.step(f"checker {number} logs in to the hub with TOTP and the queue", page):
        steps.hub_login(page, checker)
        steps.queue_login(page)
    if number == 1:
        with steps.step("a checker is refused a server of the project", page):
            page.goto(f"{base}/hub/spawn/{checker.username}/{project}")
            expect(page.get_by_text(f"Cannot start {project}")).to_be_visible(timeout=SHOWN_MS)
            journey.checker_spawn_text = page.locator("body").inner_text()[:500]
            page.goto(f"{base}{QUEUE}/")
    with steps.step(f"checker {number} approves the table and submits a review", page):
        page.get_by_role("link", name=journey.title).click()
        before = "submitted" if number == 1 else "partially reviewed"
        expect(page.locator("#request-status")).to_have_text(before, timeout=SHOWN_MS)
        page.get_by_role("link", name=TABLE).click()
        page.get_by_label("Comment (required to approve").fill(f"Checker {number}: safe.")
        page.get_by_role("button", name="Approve").click()
        steps.flash(page, "Your vote: approved.")
        page.goto(request_url)  # the vote may land on the file or the request page
        page.get_by_role("button", name="Submit review").click()
        steps.flash(page, "Review submitted.")
    if number == 2:
        with steps.step("the second checker releases", page):
            expect(page.locator("#request-status")).to_have_text("reviewed", timeout=SHOWN_MS)
            page.get_by_label("Release comment").fill("Two approvals: release.")
            page.get_by_role("button", name="Release files").click()
            steps.flash(page, "Approved: 1 file(s) will be released.")
    page.context.close()


def _download(steps: Walk, queue: Page, request_url: str) -> None:
    """Ada, outside the sandbox: the released file, through her browser's download."""
    journey = steps.journey
    with steps.step("the release worker copies the file out; the researcher downloads it", queue):
        queue.goto(request_url)
        link = queue.get_by_role("link", name=f"Download {TABLE}")
        reload_until(queue, link, RELEASE_TIMEOUT)
        journey.statuses.append(queue.locator("#request-status").inner_text())
        with queue.expect_download() as download:
            link.click()
        journey.downloaded = Path(download.value.path()).read_bytes()
