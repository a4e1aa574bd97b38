"""The pixels-only access tier (SATRE 2.1.01): the session's JupyterLab runs in a browser
*inside* the sandbox, and the researcher's own browser receives only its pixels.

``xpra_command`` builds the command line of an xpra 3.1 server (Debian bookworm's ``xpra``
package) on a private X display (Xvfb) with its HTML5 client on, and every channel between the
researcher's device and the session other than pixels out and keyboard and mouse in switched
off: clipboard, file transfer, printing, opening files and URLs, sound, webcam, notifications,
system tray, D-Bus, mmap, remote logging, and starting new commands. It serves the whole
display as one desktop, so the inner windows' titles (which a page sets, and which would reach
the researcher as text) stay inside. Its one child is
``chromium_command``: Debian's Chromium in app mode showing the session's JupyterLab on the
sandbox's own loopback, which the researcher's browser never reaches. Both functions are pure;
``launch`` is the thin shell that runs the server. The design, what it stops and what it does
not, is in ``docs/pixels-only.md``.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ACCESS_TIERS = ("browser", "pixels")
LOOPBACK = frozenset({"127.0.0.1", "localhost"})
# xpra 3.1 reads these (when set, even empty) instead of its default, system and user config
CONF_DIR_VARIABLES = ("XPRA_DEFAULT_CONF_DIRS", "XPRA_SYSTEM_CONF_DIRS", "XPRA_USER_CONF_DIRS")

# Every channel except pixels out and input in, each off with the strongest value xpra 3.1
# accepts ("disabled" for sound: "off" would let the client switch it on).
CLOSED_CHANNELS = (
    "--clipboard=no",
    "--file-transfer=no",
    "--open-files=no",
    "--open-url=no",
    "--printing=no",
    "--webcam=no",
    "--speaker=disabled",
    "--microphone=disabled",
    "--pulseaudio=no",
    "--av-sync=no",
    "--notifications=no",
    "--system-tray=no",
    "--tray=no",
    "--bell=no",
    "--xsettings=no",
    "--mdns=no",
    "--dbus-proxy=no",
    "--dbus-control=no",
    "--dbus-launch=",
    "--mmap=no",  # shared memory with a client on the same host
    "--remote-logging=no",
    "--start-new-commands=no",  # a client may not start programs in the session
    "--sharing=no",
    "--lock=yes",
    "--forward-xdg-open=no",
    "--ssh-upgrade=no",  # no SSH, RFB (VNC) or TLS on the listening socket: HTTP only
    "--rfb-upgrade=0",
    "--ssl=off",
)

# Chromium inside the sandbox: no sandbox of its own (the session's bubblewrap is the sandbox
# and forbids nested user namespaces), nothing fetched from outside, a fresh profile.
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-dev-shm-usage",
    "--password-store=basic",
)


@dataclass(frozen=True)
class PixelsSettings:
    """One pixels-only session. The server listens on ``unix_socket`` (inside the sandbox: the
    session's socket, which the proxy reaches) or on ``127.0.0.1:tcp_port`` (tests), never
    both. ``lab_url`` is what the inner browser shows; ``display`` the private X display."""

    display: int
    lab_url: str
    profile_dir: Path
    socket_dir: Path
    unix_socket: Path | None = None
    tcp_port: int | None = None
    screen: tuple[int, int] = (1600, 1000)
    xpra: str = "xpra"
    xvfb: str = "Xvfb"
    chromium: str = "chromium"
    session_name: str = "enclave"

    @property
    def xauthority(self) -> Path:
        """The X display's authority file (X clients of the session's display read it)."""
        return self.socket_dir / "Xauthority"

    def __post_init__(self) -> None:
        if (self.unix_socket is None) == (self.tcp_port is None):
            raise ValueError("a pixels session listens on exactly one of unix_socket, tcp_port")
        if self.display <= 0:
            raise ValueError(f"the X display must be a positive number; got {self.display}")
        if not _loopback(self.lab_url):
            raise ValueError("the inner browser shows only the sandbox's own loopback")


def _loopback(url: str) -> bool:
    parsed = urlsplit(url)
    if parsed.scheme == "file":
        return not parsed.netloc
    return parsed.scheme == "http" and parsed.hostname in LOOPBACK and not parsed.username


def access_tier(raw: str) -> str:
    """``raw`` when it names an access tier; ValueError otherwise."""
    if raw not in ACCESS_TIERS:
        raise ValueError(f"expected one of {', '.join(ACCESS_TIERS)}; got {raw!r}")
    return raw


def chromium_command(settings: PixelsSettings) -> list[str]:
    """The inner browser: JupyterLab in an undecorated app window on a fresh profile."""
    return [
        settings.chromium,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={settings.profile_dir}",
        f"--window-size={settings.screen[0]},{settings.screen[1]}",
        "--window-position=0,0",
        f"--app={settings.lab_url}",
    ]


def xvfb_command(settings: PixelsSettings) -> str:
    """The X server xpra starts (one string: xpra splits it itself). No TCP listener."""
    width, height = settings.screen
    return (
        f"{settings.xvfb} +extension Composite -screen 0 {width}x{height}x24+32 "
        "-dpi 96 -nolisten tcp -noreset -auth $XAUTHORITY"
    )


def xpra_command(settings: PixelsSettings) -> list[str]:
    """``xpra start-desktop`` in the foreground with the HTML5 client, one child (the inner
    browser), and every channel but pixels and input closed. Nothing is read from the host's
    ``/etc/xpra`` that these flags do not override (and the sandbox does not mount it)."""
    if settings.unix_socket is not None:
        listen = [f"--bind={settings.unix_socket}"]
    else:
        listen = ["--bind=none", f"--bind-tcp=127.0.0.1:{settings.tcp_port}"]
    return [
        settings.xpra,
        "start-desktop",  # one desktop window titled by xpra, not one per inner window
        f":{settings.display}",
        "--daemon=no",
        "--systemd-run=no",
        "--html=on",
        *listen,
        f"--socket-dir={settings.socket_dir}",
        "--socket-dirs=",
        f"--log-dir={settings.socket_dir}",
        f"--session-name={settings.session_name}",
        f"--xvfb={xvfb_command(settings)}",
        "--fake-xinerama=no",
        "--resize-display=no",
        "--opengl=no",
        *CLOSED_CHANNELS,
        f"--start-child={shlex.join(chromium_command(settings))}",
        "--exit-with-children=yes",
        "--terminate-children=yes",
    ]


def xpra_environment(settings: PixelsSettings, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` with xpra's configuration directories emptied (the host's ``/etc/xpra`` turns
    the clipboard and ``/etc/X11/Xsession`` on: an option no flag names must not come from a
    file either) and the display's X authority file in the session's own directory."""
    return {
        **base,
        **{name: "" for name in CONF_DIR_VARIABLES},
        "XAUTHORITY": str(settings.xauthority),
    }


def launch(
    settings: PixelsSettings, log: Path, environ: Mapping[str, str]
) -> subprocess.Popen[bytes]:
    """Start the xpra server (it starts Xvfb and the inner browser) with ``environ``; its
    output goes to ``log``. The caller stops it (SIGTERM ends the browser and the X server
    too). ``environ`` must hold no secret (no hub token): any connected client may ask for
    ``xpra info``, which includes the server's environment and its child's command line."""
    settings.socket_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    settings.xauthority.touch(mode=0o600)  # xpra falls back to its own path when it is missing
    with log.open("ab") as out:
        return subprocess.Popen(
            xpra_command(settings),
            env=xpra_environment(settings, environ),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
