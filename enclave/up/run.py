"""``enclave up``: check, build, provision, start, wait, print the URLs, stop on a signal.

Decision on non-root: no fallback. The sandbox needs root (an account per researcher,
cgroups, the setuid bubblewrap), and a hub without it would not be the enclave; ``up`` says
exactly what is missing and exits 2. As root it installs bubblewrap itself when missing.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from enclave.hub.config import QUEUE
from enclave.linkage.demo import ADMIN, build_demo_extract
from enclave.settings import Settings
from enclave.up import plan, provision, session_env, stack

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.prefix) / "bin"
CHP = Path(sys.prefix) / "node_modules" / ".bin" / "configurable-http-proxy"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class UpOptions:
    data_dir: Path
    port: int = 8000
    population: int | None = None  # default: as built before, else 40,000
    session_env: Path | None = None  # an existing environment (the tests share one)


def _say(*lines: str) -> None:
    for line in lines:
        print(line, flush=True)


def _secret_file(path: Path, make: int = 32) -> str:
    """The secret in ``path``, created (0600, in a 0700 directory) when missing."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(secrets.token_hex(make) + "\n")
    os.chmod(path, 0o600)
    return path.read_text(encoding="utf-8").strip()


def _install_bubblewrap() -> bool:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _say("installing bubblewrap with apt-get")
    install = ["apt-get", "install", "-y", "-q", "bubblewrap"]
    if subprocess.run(install, env=env, capture_output=True).returncode:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        subprocess.run(install, env=env, capture_output=True)
    return shutil.which("bwrap") is not None


def check_prerequisites() -> int:
    """0 when everything is there (bubblewrap installed first when root); else 2, having said
    what is missing."""
    problems, root_fixes = plan.missing(euid=os.geteuid(), which=shutil.which, chp=CHP)
    if not problems:
        return 0
    if os.geteuid() == 0 and root_fixes and _install_bubblewrap():
        return 0
    print("enclave up: cannot start; missing:", file=sys.stderr)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)
    return 2


def up(options: UpOptions) -> int:
    if check_prerequisites():
        return 2
    layout = plan.Layout(options.data_dir.resolve())
    stale = plan.stale_checker_demo(layout.data_dir)
    if stale:
        print(f"enclave up: {stale}", file=sys.stderr)
        return 2
    port = stack.free_port(options.port)
    started = time.monotonic()
    demo = build_demo_extract(
        layout.data_dir,
        population=plan.population(layout.data_dir, options.population),
        progress=True,
    )
    _say(
        f"demo extract: project {demo.project} at {demo.extract_dir} "
        + (f"(built: {', '.join(demo.steps)})" if demo.steps else "(reused)")
    )
    settings = Settings(data_dir=layout.data_dir)
    provision.init_schemas(settings)
    # person-level synthetic inputs, the database, the hub's state: root only; the session
    # accounts traverse the data directory and projects/ to their mounts and the hub socket
    for private in (layout.data_dir / "db", layout.data_dir / "synth", layout.hub_state,
                    layout.logs):  # fmt: skip
        private.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(private, 0o700)
    for shared in (layout.data_dir, layout.data_dir / "projects"):
        os.chmod(shared, 0o711)
    _secret_file(layout.secret_key)
    token = _secret_file(layout.hub_api_token)
    _secret_file(layout.cookie_secret)
    found = provision.provision(settings, layout)
    if found is None:
        _say(*plan.reused_text(ADMIN, [email for _, email in provision.ACCOUNTS]))
    else:
        _say(*plan.credentials_text(found))
    environment = session_env.ensure(layout.session_env, REPO, given=options.session_env)
    queue_port = stack.free_port()
    env = plan.hub_environment(
        layout,
        path=f"{VENV_BIN}:{SYSTEM_PATH}",
        port=port,
        queue_port=queue_port,
        hub_api_token=token,
        session_env=environment,
        chp=str(CHP) if CHP.exists() else "configurable-http-proxy",
    )
    return _run(layout, env, port, started)


def _run(layout: plan.Layout, env: dict[str, str], port: int, started: float) -> int:
    stopping = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    log = layout.logs / "hub.log"
    urls = plan.Urls(f"http://127.0.0.1:{port}")
    hub = stack.start_hub(VENV_BIN / "jupyterhub", env, log)
    code = 0
    try:
        _say(f"starting JupyterHub, the proxy and the review queue (log: {log})")
        health = f"{urls.public}/hub/health"
        stack.wait_until(
            "the hub", lambda: stack.status(health) == 200 or stopping.is_set(), hub, log
        )
        # the queue answers once the hub has routed it: a redirect to the hub's login
        queue = lambda: stack.status(urls.queue) in (200, 302, 303) or stopping.is_set()  # noqa: E731
        stack.wait_until(f"the {QUEUE} service", queue, hub, log)
        if not stopping.is_set():
            _sync_groups(layout, port, env["ENCLAVE_HUB_API_TOKEN"])
            _say(*plan.ready_text(urls, log))
            _say(f"(ready in {time.monotonic() - started:.1f} s)")
        while not stopping.is_set():
            if hub.poll() is not None:
                print(
                    f"enclave up: JupyterHub exited ({hub.returncode}); see {log}", file=sys.stderr
                )
                code = 1
                break
            stopping.wait(0.5)
    except stack.StackError as error:
        print(f"enclave up: {error}", file=sys.stderr)
        code = 1
    finally:
        _say("stopping the hub, the proxy, the review queue and the culler")
        killed = stack.stop(hub, layout, port)
        if killed:
            _say(f"killed {len(killed)} process(es) left behind")
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    _say("stopped")
    return code


def _sync_groups(layout: plan.Layout, port: int, token: str) -> None:
    """Mirror the control plane's users and project groups into the hub now, so the hub's
    admin pages show them before anyone logs in (the login refreshes them anyway)."""
    from enclave.control.context import open_context
    from enclave.control.hub import sync_hub

    hub_settings = Settings(
        data_dir=layout.data_dir, hub_url=f"http://127.0.0.1:{port}/hub/api", hub_api_token=token
    )
    ctx = open_context(hub_settings)
    try:
        sync_hub(ctx, hub_settings)
    except Exception as error:  # the hub works without it: say so and go on
        print(f"enclave up: could not mirror groups to the hub yet ({type(error).__name__})")
    finally:
        ctx.close()
