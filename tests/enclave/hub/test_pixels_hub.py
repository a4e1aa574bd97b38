"""The pixels-only tier served by the real hub (SATRE 2.1.01): JupyterHub 6 with the
bubblewrap spawner and ``ENCLAVE_HUB_ACCESS_TIER=pixels`` starts, inside the sandbox,
JupyterLab, xpra with the inner browser and the login door (``enclave.hub.pixels_session``).
The researcher logs in with Debian's Chromium through the hub and sees the session's Lab as
pixels; nobody else gets in: not a visitor without a login, not another member of the same
project, not a WebSocket carrying another person's token.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import websocket
from playwright.sync_api import BrowserContext, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from enclave.hub.pixels_door import XPRA_WWW
from tests.browser import browser_fixture
from tests.debian import install as debian_packages
from tests.enclave.hub.sandboxhub import SandboxHub, sandbox_hub
from tests.enclave.hub.test_pixels import DARK_PIXELS, PACKAGES
from tests.enclave.test_up import analysis_environment

__all__ = ["browser_fixture"]

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("pixels-hub")]

PREFIX = "/user/researcher/alpha/"


@pytest.fixture(scope="module")
def hub() -> Iterator[SandboxHub]:
    debian_packages(*PACKAGES, "fonts-dejavu-core")
    # the dummy authenticator lets the browser log in with a form (membership still comes
    # from the control plane's groups); Chromium, xpra and the Lab need more than 400 MB
    env = {
        "ENCLAVE_HUB_ACCESS_TIER": "pixels",
        "ENCLAVE_HUB_AUTHENTICATOR_CLASS": "dummy",
        # the sandbox runs the session's server from the environment: it needs the enclave
        "ENCLAVE_HUB_PYTHON_ENVIRONMENT": str(analysis_environment()),
    }
    with sandbox_hub(mem_limit=3 * 1024**3, hub_env=env) as running:
        yield running


@pytest.fixture(scope="module")
def session(hub: SandboxHub) -> dict[str, Any]:
    return hub.spawn("researcher", "alpha", timeout=150)


def _login(context: BrowserContext, hub: SandboxHub, user: str) -> Page:
    """The hub's login form, filled and sent until the hub has moved on from it (a form sent
    while the page is still settling is sometimes dropped by the browser)."""
    page = context.new_page()
    for _ in range(3):
        page.goto(f"{hub.url}/hub/login")
        page.wait_for_load_state("networkidle")
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", "any")
        page.click("input[type=submit], button[type=submit]")
        with contextlib.suppress(PlaywrightTimeout):
            page.wait_for_url(lambda url: "/hub/login" not in url, timeout=15_000)
            return page
    raise AssertionError(f"the hub did not log {user} in: {page.content()[-2000:]}")


def _wait(what: str, ready: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def test_the_researcher_logs_in_and_sees_the_lab_as_pixels(
    hub: SandboxHub, session: dict[str, Any], browser: BrowserContext
) -> None:
    page = _login(browser, hub, "researcher")
    page.goto(f"{hub.url}{PREFIX}")
    page.wait_for_selector("canvas", timeout=60_000)
    # JupyterLab's own page, drawn by the inner browser: dark text on a light background
    _wait("the session's pixels", lambda: page.evaluate(DARK_PIXELS) > 2000, 90)
    for frame in page.frames:
        dom = frame.content()
        assert "jp-LabShell" not in dom and "JupyterLab" not in frame.title()


def test_a_visitor_without_a_login_is_sent_to_the_hub_and_gets_no_socket(
    hub: SandboxHub, session: dict[str, Any]
) -> None:
    page = requests.get(f"{hub.url}{PREFIX}", allow_redirects=False, timeout=30)
    assert page.status_code == 302
    assert "/hub/api/oauth2/authorize" in page.headers["Location"]
    assert "xpra" not in page.text.lower()
    # the client's static files are public (the Debian package's, the same for everyone)
    client = requests.get(f"{hub.url}{PREFIX}js/Client.js", allow_redirects=False, timeout=30)
    assert client.content == (XPRA_WWW / "js" / "Client.js").read_bytes()
    # and nothing outside them is served
    outside = requests.get(
        f"{hub.url}{PREFIX}js/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", timeout=30
    )
    assert outside.status_code in (403, 404) and "root:" not in outside.text
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(
            f"ws://127.0.0.1:{hub.port}{PREFIX}", subprotocols=["binary"], timeout=30
        )
    assert refused.value.status_code == 403


def test_another_member_of_the_project_is_refused(
    hub: SandboxHub, session: dict[str, Any], browser: BrowserContext
) -> None:
    page = _login(browser, hub, "other")
    answer = page.goto(f"{hub.url}{PREFIX}")
    assert answer is not None and answer.status == 403
    assert page.locator("canvas").count() == 0


@pytest.mark.parametrize(("owner", "opens"), [("other", False), ("researcher", True)])
def test_the_websocket_opens_with_the_owners_token_only(
    hub: SandboxHub, session: dict[str, Any], owner: str, opens: bool
) -> None:
    url = f"ws://127.0.0.1:{hub.port}{PREFIX}"
    header = [f"Authorization: token {hub.user_token(owner)}"]
    if not opens:
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(url, header=header, subprotocols=["binary"], timeout=30)
        assert refused.value.status_code == 403
        return
    connection = websocket.create_connection(
        url, header=header, subprotocols=["binary"], timeout=30
    )
    try:
        assert connection.getsubprotocol() == "binary"
        # the door reached xpra: it would close at once with 1011 otherwise
        connection.settimeout(3)
        with contextlib.suppress(websocket.WebSocketTimeoutException):
            connection.recv()
        assert connection.connected
    finally:
        connection.close()
