"""The running processes of ``enclave up``: JupyterHub in its own session (it starts the
proxy and the services: the review queue with its workers, the idle culler), readiness
checks, a clean stop and a search for anything left behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from contextlib import suppress
from pathlib import Path

from enclave.up.plan import Layout

CONFIG = Path(__file__).resolve().parents[1] / "hub" / "jupyterhub_config.py"


class StackError(RuntimeError):
    """A process did not start or become ready; the message names it and its log."""


def free_port(preferred: int = 0) -> int:
    """``preferred`` when it is free on loopback (0: any free port)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError as error:
            raise StackError(f"port {preferred} is in use: pick another with --port") from error
        port: int = sock.getsockname()[1]
        return port


def start_hub(jupyterhub: Path, env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """JupyterHub in a session of its own, so a terminal's Ctrl-C reaches only us and we stop
    it in order (SIGTERM: it stops its services and its proxy)."""
    log.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(jupyterhub), "-f", str(CONFIG)],
            cwd=env["HOME"],
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def status(url: str) -> int | None:
    """The HTTP status of a GET (redirects not followed), None when nothing answers."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *_args: object, **_kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=5) as response:
            code: int = response.status
            return code
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return None


def wait_until(
    what: str,
    ready: Callable[[], bool],
    process: subprocess.Popen[bytes],
    log: Path,
    timeout: float = 120,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(f"JupyterHub exited while waiting for {what}; see {log}")
        if ready():
            return
        time.sleep(0.3)
    raise StackError(f"{what} did not answer within {timeout:.0f} s; see {log}")


def stop(process: subprocess.Popen[bytes], layout: Layout, port: int) -> list[int]:
    """SIGTERM the hub and wait; then kill whatever of ours is left (the proxy from its pid
    file, services by their command line). Returns the pids that had to be killed."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    killed = leftovers(layout, port)
    for pid in killed:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return killed


def leftovers(layout: Layout, port: int) -> list[int]:
    """Processes started for this data directory and still alive: those whose command line
    names it (proxy, queue service) or this hub's API (the idle culler)."""
    marks = (str(layout.data_dir).encode(), f"127.0.0.1:{port}/hub/api".encode())
    found = []
    mine = _ancestors()  # ``sudo enclave up --data-dir ...`` names it too
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if any(mark in cmdline for mark in marks):
            found.append(int(entry.name))
    pid_file = layout.proxy_pid
    if pid_file.exists():
        with suppress(ValueError):
            pid = int(pid_file.read_text().strip())
            with suppress(OSError):  # a stale file may name a reused pid: check it is a proxy
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                if b"configurable-http-proxy" in cmdline and pid not in found:
                    found.append(pid)
    return found


def _ancestors() -> set[int]:
    pids = {os.getpid()}
    pid = os.getpid()
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        pids.add(pid)
    return pids
