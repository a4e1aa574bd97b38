"""The server of a pixels-only session, run by the spawner inside the sandbox in place of
``jupyterhub-singleuser`` (``python -m enclave.hub.pixels_session --ServerApp.sock=PATH``).

It starts three things and ends them together:

1. JupyterLab on the sandbox's own loopback (a network namespace of its own: only the
   session's processes reach it), with a fresh random token and the enclave's hardening;
2. the xpra server (``enclave.hub.pixels``) whose one child is the inner browser showing it;
3. the front door (``enclave.hub.pixels_door``) on the session's socket, where the proxy
   sends the researcher.

Only the door sees the hub's variables (its API token among them): the Lab and xpra are
started without any ``JUPYTERHUB_`` variable, since any xpra client may read xpra's
environment and its child's command line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tornado import httpserver, netutil

from enclave.hub import pixels, pixels_door

LAB_PORT = 8888
XPRA_PORT = 14500
DISPLAY = 100
# what the Lab uses instead of the hub's scope check: the same refusals, token login
LAB_AUTHORIZER = "enclave.hub.singleuser.PixelsAuthorizer"


def without_hub(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` with every JupyterHub variable removed (the token first of all)."""
    return {k: v for k, v in environ.items() if not k.startswith("JUPYTERHUB_")}


def lab_command(python: str, token: str, root_dir: str) -> list[str]:
    return [
        python,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={LAB_PORT}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root_dir}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.authorizer_class={LAB_AUTHORIZER}",
    ]


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not start within {timeout:.0f} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


def _socket_path(argv: Sequence[str]) -> Path:
    parser = argparse.ArgumentParser(prog="enclave.hub.pixels_session")
    parser.add_argument("--ServerApp.sock", dest="sock", required=True, type=Path)
    # the spawner's other single-user options (default URL and the like) are the browser
    # tier's; this server has no use for them
    known, _ = parser.parse_known_args(argv)
    path: Path = known.sock
    return path


async def _serve(
    sock: Path, stop: asyncio.Event, children: Sequence[subprocess.Popen[bytes]]
) -> None:
    """Serve the door until a signal or until the Lab or xpra ends (then the session ends,
    and the hub sees it stopped)."""
    app = pixels_door.make_app(f"ws://127.0.0.1:{XPRA_PORT}/")
    server = httpserver.HTTPServer(app, xheaders=True)
    server.add_socket(netutil.bind_unix_socket(str(sock), mode=0o600))
    while not stop.is_set() and all(child.poll() is None for child in children):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1)
    server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    sock = _socket_path(sys.argv[1:] if argv is None else argv)
    home = os.environ.get("HOME", "/tmp")
    scratch = Path(home) / ".pixels"  # the logs stay with the researcher's own files
    scratch.mkdir(mode=0o700, parents=True, exist_ok=True)
    quiet = without_hub(os.environ)
    token = secrets.token_urlsafe(32)
    with (scratch / "lab.log").open("ab") as lab_log:
        lab = subprocess.Popen(
            lab_command(sys.executable, token, home),
            env=quiet,
            stdin=subprocess.DEVNULL,
            stdout=lab_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    settings = pixels.PixelsSettings(
        display=DISPLAY,
        lab_url=f"http://127.0.0.1:{LAB_PORT}/lab?token={token}",
        profile_dir=scratch / "browser-profile",
        socket_dir=scratch / "xpra",
        tcp_port=XPRA_PORT,
    )
    xpra: subprocess.Popen[bytes] | None = None
    try:
        _wait_for_port(LAB_PORT, lab, "JupyterLab", 60)
        xpra = pixels.launch(settings, scratch / "xpra.log", quiet)
        _wait_for_port(XPRA_PORT, xpra, "xpra", 60)
        loop = asyncio.new_event_loop()
        stop = asyncio.Event()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, stop.set)
        loop.run_until_complete(_serve(sock, stop, (lab, xpra)))
    finally:
        for process in (xpra, lab):
            if process is not None:
                _stop(process)
    return 0


if __name__ == "__main__":
    sys.exit(main())
