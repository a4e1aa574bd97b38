"""The pixels-only access tier (SATRE 2.1.01), attacked with real components: an xpra server
started with ``enclave.hub.pixels``'s command line on a private display, Debian's Chromium
inside it showing a page that stands for the session's JupyterLab, and Debian's Chromium driven
by Playwright as the researcher's browser on the HTML5 client. The researcher tries to get the
page's text, to copy out through the clipboard, to paste in through it and to upload a file;
each must fail while the same keystrokes demonstrably reach the session."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, FilePayload, Page
from traitlets.config import Config

from enclave.hub.config import HubOptions, configure
from enclave.hub.pixels import (
    CLOSED_CHANNELS,
    PixelsSettings,
    chromium_command,
    launch,
    xpra_command,
    xpra_environment,
)
from enclave.settings import Settings, SettingsError
from tests.browser import browser_fixture, chromium
from tests.debian import install as debian_packages

__all__ = ["browser_fixture"]

PACKAGES = ("xpra", "xvfb", "xclip", "python3-pil")  # xpra's window code imports Pillow
ROW = "ROW-4417-INCOME-52310"  # what the session shows: person-level data
TITLE = "TITLE-CHANNEL-9034"  # the inner page's title: window titles are text, not pixels
CLIP_OUT = "CLIPBOARD-OUT-7702"
CLIP_IN = "CLIPBOARD-IN-3381"
SENTINEL = "RESEARCHER-SENTINEL"
UPLOAD = "UPLOAD-IN-5521"
INNER_PAGE = f"""<!doctype html>
<html><head><title>{TITLE}</title></head>
<body style="background:#fff; margin:0">
<h1 style="font-size:64px">{ROW}</h1>
<textarea id="t" autofocus rows="2" cols="40">{ROW}</textarea>
<script>
  // wherever the researcher clicks, the text area takes the focus and holds the row again
  // (a paste replaces it)
  document.addEventListener("mousedown", (event) => {{
    event.preventDefault();
    const area = document.getElementById("t");
    area.value = "{ROW}";
    area.focus();
  }});
</script>
</body></html>
"""
# How many dark pixels the researcher's canvas must show: the heading alone draws thousands.
DARK_PIXELS = """() => {
  let dark = 0;
  for (const canvas of document.querySelectorAll('canvas')) {
    if (!canvas.width || !canvas.height) continue;
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i + 3] > 0 && data[i] < 64 && data[i + 1] < 64 && data[i + 2] < 64) dark++;
    }
  }
  return dark;
}"""


@dataclass(frozen=True)
class Session:
    settings: PixelsSettings
    url: str
    root: Path  # everything the session writes is under here
    x_env: dict[str, str]  # what an X client of the session's display needs


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _free_display() -> int:
    start = 200 + os.getpid() % 500  # xdist workers start apart
    for number in range(start, start + 200):
        if not (
            Path(f"/tmp/.X{number}-lock").exists() or Path(f"/tmp/.X11-unix/X{number}").exists()
        ):
            return number
    raise RuntimeError("no free X display number")


def _wait(what: str, ready: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def _stop(process: subprocess.Popen[bytes], settings: PixelsSettings) -> None:
    """SIGTERM ends the inner browser and Xvfb with xpra; whatever of ours survives is killed."""
    xvfb = _our_xvfb(settings)
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
    if not xvfb:
        return
    with contextlib.suppress(AssertionError):
        _wait("Xvfb to exit", lambda: _our_xvfb(settings) != xvfb, 5)  # it removes its lock
    if _our_xvfb(settings) == xvfb:
        os.kill(xvfb, signal.SIGKILL)
        Path(f"/tmp/.X{settings.display}-lock").unlink(missing_ok=True)
        Path(f"/tmp/.X11-unix/X{settings.display}").unlink(missing_ok=True)


def _our_xvfb(settings: PixelsSettings) -> int:
    """The pid of the running X server of ``settings``' display if xpra started it for these
    settings (its command line names their authority file), else 0: never another's."""
    try:
        pid = int(Path(f"/tmp/.X{settings.display}-lock").read_text().strip())
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return 0
    return pid if str(settings.xauthority).encode() in command else 0


@pytest.fixture(name="session", scope="module")
def session_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    """One session for the module (its tests run in order on one worker: see the marks)."""
    debian_packages(*PACKAGES)
    tmp_path = tmp_path_factory.mktemp("pixels")
    inner = tmp_path / "lab.html"
    inner.write_text(INNER_PAGE, encoding="utf-8")
    home = tmp_path / "home"
    home.mkdir()
    settings = PixelsSettings(
        display=_free_display(),
        lab_url=inner.as_uri(),
        profile_dir=tmp_path / "inner-profile",
        socket_dir=tmp_path / "xpra",
        tcp_port=_free_port(),
        chromium=chromium(),
        screen=(1280, 720),
    )
    environ = {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8"}
    log = tmp_path / "xpra.log"
    process = launch(settings, log, environ)
    try:
        _wait(
            "xpra's port", lambda: process.poll() is None and _accepts(settings.tcp_port or 0), 30
        )
        _wait("the inner browser", lambda: "started command" in log.read_text(errors="replace"), 15)
        yield Session(
            settings=settings,
            url=f"http://127.0.0.1:{settings.tcp_port}/",
            root=tmp_path,
            x_env=xpra_environment(settings, {**environ, "DISPLAY": f":{settings.display}"}),
        )
    finally:
        _stop(process, settings)


def _x_clipboard(session: Session, selection: str = "clipboard") -> str:
    """The enclave side's X selection ("" when nobody owns it)."""
    done = subprocess.run(
        ["xclip", "-o", "-selection", selection],
        env=session.x_env,
        capture_output=True,
        timeout=10,
    )
    return done.stdout.decode(errors="replace") if done.returncode == 0 else ""


def _set_x_clipboard(session: Session, text: str) -> None:
    # xclip forks a child that serves the selection until the X server ends: no pipes to it
    subprocess.run(
        ["xclip", "-i", "-selection", "clipboard"],
        input=text.encode(),
        env=session.x_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
        timeout=10,
    )


def _researcher(browser: BrowserContext, session: Session) -> Page:
    """The researcher's browser on the HTML5 client, once the session's window is drawn."""
    browser.grant_permissions(["clipboard-read", "clipboard-write"], origin=session.url[:-1])
    page = browser.new_page()
    page.goto(session.url)
    page.wait_for_selector("canvas", timeout=20_000)
    _wait("the session's pixels", lambda: page.evaluate(DARK_PIXELS) > 2000, 20)
    return page


def _researcher_clipboard(page: Page) -> str:
    text: str = page.evaluate("navigator.clipboard.readText()")
    return text


@pytest.mark.xdist_group("pixels")
def test_the_researcher_gets_pixels_and_no_clipboard_or_upload(
    session: Session, browser: BrowserContext
) -> None:
    page = _researcher(browser, session)

    # (a) pixels only: the session's text and its window title reach no part of the page
    for frame in page.frames:
        dom = frame.content()
        assert ROW not in dom and TITLE not in dom
    assert TITLE not in page.title()
    assert page.evaluate(DARK_PIXELS) > 2000  # yet the heading is drawn

    # (b) clipboard out: the enclave side copies something
    page.evaluate(f"navigator.clipboard.writeText({SENTINEL!r})")
    _set_x_clipboard(session, CLIP_OUT)
    time.sleep(1.0)  # xpra would announce the new owner to a client at once
    assert _researcher_clipboard(page) == SENTINEL

    # (c) clipboard in: the researcher pastes into the session's text area
    page.evaluate(f"navigator.clipboard.writeText({CLIP_IN!r})")
    canvas = page.locator("canvas").first
    canvas.click(position={"x": 300, "y": 300})  # the inner page focuses its text area
    page.keyboard.press("Control+a")
    page.keyboard.press("Control+v")
    time.sleep(1.5)
    assert _x_clipboard(session) == CLIP_OUT
    assert CLIP_IN not in _x_clipboard(session, "primary")

    # (b, continued) with the researcher's own copy keystrokes on the session's text
    canvas.click(position={"x": 300, "y": 300})
    page.keyboard.press("Control+a")
    page.keyboard.press("Control+c")
    # the keystrokes reached the session: the inner browser copied the row (inside the enclave)
    _wait("the inner copy", lambda: ROW in _x_clipboard(session), 10)
    time.sleep(1.0)
    assert _researcher_clipboard(page) == CLIP_IN

    # (e) file transfer in: the HTML5 client's own upload form (last: the server may hang up)
    upload = FilePayload(name="upload.txt", mimeType="text/plain", buffer=UPLOAD.encode())
    page.set_input_files("#upload", files=[upload])
    time.sleep(2.0)
    assert not _files_holding(session.root, UPLOAD.encode())


def _files_holding(root: Path, needle: bytes) -> list[Path]:
    found = []
    for path in root.rglob("*"):
        with contextlib.suppress(OSError):  # the inner browser writes and removes files
            if path.is_file() and not path.is_symlink() and needle in path.read_bytes():
                found.append(path)
    return found


@pytest.mark.xdist_group("pixels")
def test_xpra_reports_clipboard_file_transfer_and_printing_absent(session: Session) -> None:
    """(d) The server's own account, also what any connected client may request: no
    clipboard, file or printing subsystem (each reports a section when it is on), no new
    commands, no second client, and no window title of the session's browser (which the
    first test waited to be drawn)."""
    done = subprocess.run(
        ["xpra", "info", f"tcp://127.0.0.1:{session.settings.tcp_port}/"],
        env=session.x_env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert "features.start-new-commands=False" in lines
    assert "network.sharing=False" in lines
    sections = {line.split(".", 1)[0] for line in lines if "=" in line}
    assert "windows" in sections  # the report is complete
    assert not sections & {"clipboard", "file", "printing", "webcam", "sound", "audio"}
    assert TITLE not in done.stdout


def _unix_request(path: Path, request: bytes) -> bytes:
    """Send ``request`` on the unix socket ``path``; the first bytes of the answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(10)
        client.connect(str(path))
        client.sendall(request)
        return client.recv(4096)


def _answers(path: Path) -> bool:
    """Is xpra serving on ``path``? (It binds the socket before its main loop runs.)"""
    with contextlib.suppress(OSError):
        return _unix_request(path, b"GET /index.html HTTP/1.0\r\n\r\n").startswith(b"HTTP/")
    return False


def test_the_session_socket_serves_the_client_and_its_websocket_to_its_owner_only(
    tmp_path: Path,
) -> None:
    """Inside the sandbox xpra listens on a unix socket (the proxy's target), not on TCP."""
    debian_packages(*PACKAGES)
    inner = tmp_path / "lab.html"
    inner.write_text(INNER_PAGE, encoding="utf-8")
    settings = _settings(
        tmp_path, display=_free_display(), lab_url=inner.as_uri(), chromium=chromium()
    )
    environ = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    process = launch(settings, tmp_path / "xpra.log", environ)
    try:
        assert settings.unix_socket is not None
        _wait("the session socket", lambda: _answers(settings.unix_socket or tmp_path), 30)
        assert settings.unix_socket.stat().st_mode & 0o777 == 0o600
        page = _unix_request(settings.unix_socket, b"GET /index.html HTTP/1.0\r\n\r\n")
        assert page.startswith((b"HTTP/1.0 200", b"HTTP/1.1 200"))
        upgrade = _unix_request(
            settings.unix_socket,
            b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n"
            b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Protocol: binary\r\n\r\n",
        )
        assert upgrade.startswith(b"HTTP/1.1 101")
    finally:
        _stop(process, settings)


def _settings(tmp_path: Path, **changes: object) -> PixelsSettings:
    values: dict[str, object] = {
        "display": 90,
        "lab_url": "http://127.0.0.1:8888/lab",
        "profile_dir": tmp_path / "profile",
        "socket_dir": tmp_path / "xpra",
        "unix_socket": tmp_path / "session.sock",
    }
    return PixelsSettings(**{**values, **changes})  # type: ignore[arg-type]


def test_the_command_closes_every_channel_and_starts_only_the_inner_browser(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path)
    command = xpra_command(settings)
    assert command[:3] == ["xpra", "start-desktop", ":90"]  # one desktop: no window titles
    assert set(CLOSED_CHANNELS) <= set(command)
    assert f"--bind={tmp_path / 'session.sock'}" in command
    assert not [arg for arg in command if arg.startswith(("--bind-tcp", "--bind-ws"))]
    children = [arg for arg in command if arg.startswith(("--start", "--exec"))]
    assert children == [
        "--start-new-commands=no",
        f"--start-child={' '.join(chromium_command(settings))}",
    ]
    env = xpra_environment(settings, {"PATH": "/usr/bin"})
    assert env["XPRA_SYSTEM_CONF_DIRS"] == "" and env["XAUTHORITY"].startswith(str(tmp_path))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tcp_port": 9000}, "exactly one of"),
        ({"unix_socket": None}, "exactly one of"),
        ({"lab_url": "http://10.0.0.5:8888/lab"}, "loopback"),
        ({"lab_url": "http://localhost:80@10.0.0.5/lab"}, "loopback"),
        ({"lab_url": "file://10.0.0.5/lab.html"}, "loopback"),
        ({"display": 0}, "positive"),
    ],
)
def test_bad_settings_are_refused(tmp_path: Path, changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _settings(tmp_path, **changes)


def test_the_hub_validates_the_access_tier_and_gives_it_to_the_spawner(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="ENCLAVE_HUB_ACCESS_TIER"):
        HubOptions.load({"ENCLAVE_HUB_ACCESS_TIER": "pixel"})
    c = Config()
    with pytest.raises(SettingsError, match="ENCLAVE_HUB_ACCESS_TIER"):
        configure(c, Settings(data_dir=tmp_path), HubOptions(access_tier="pixel"))
    assert "spawner_class" not in c.JupyterHub and "bind_url" not in c.JupyterHub
    for tier in ("pixels", "browser"):
        c = Config()
        configure(
            c, Settings(data_dir=tmp_path), HubOptions.load({"ENCLAVE_HUB_ACCESS_TIER": tier})
        )
        assert c.BwrapSpawner.access_tier == tier
