"""``enclave up`` (what ``make up`` runs), end to end: two real runs over one data directory.

The first run builds a small demonstration, prints the demo credentials, starts JupyterHub
with its proxy, the review queue as a hub service (OAuth with PKCE) and the idle culler, and
prints the URLs; a researcher then logs in to the hub with password and TOTP and into the
queue through the hub's OAuth. SIGINT must stop everything (no process left) with exit code
0. The second run must reuse everything: no linkage, no credentials printed again, quick.
While it is up, the whole journey goes through the real UI in Chromium (``tests.enclave.
journey``): notebook in the sandbox, finalised table, two checkers, release, download.
The planning helpers are checked on their own, without root.
"""

from __future__ import annotations

import fcntl
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pyotp
import pytest
import requests

from enclave.hub.config import HubOptions, configure
from enclave.settings import Settings
from enclave.up import plan, session_env
from enclave.up.stack import leftovers
from tests.enclave.hub.sandboxhub import free_port, proxy, require_root
from tests.enclave.journey import Account, Journey, walk

ROOT = Path(__file__).resolve().parents[2]
ENCLAVE = Path(sys.prefix) / "bin" / "enclave"
READY = "Review queue:"
POPULATION = 2000  # the smallest the demo's linkage is comfortable with
PROJECT = "cydl-demo"
SESSION_ENV = Path(sys.prefix) / "up-session-env"
SESSION_ENV_LOCK = Path("/tmp/enclave-up-session-env.lock")


def analysis_environment() -> Path:
    """The sessions' environment exactly as ``enclave up`` builds it (JupyterLab, what
    ``enclave.analysis`` imports, this repository's packages, the hardening), kept under the
    venv: built once (minutes), then only the packages copied in again when they change."""
    with SESSION_ENV_LOCK.open("w") as lock:  # xdist workers must not build it twice at once
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return session_env.ensure(SESSION_ENV, ROOT)
        except session_env.SessionEnvError as error:
            pytest.fail(f"cannot build the session environment: {error}")


@dataclass
class Run:
    """One ``enclave up`` process and what it printed."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    ready_after: float = 0.0
    reader: threading.Thread | None = None

    @classmethod
    def start(cls, data_dir: Path, port: int, *, population: bool = True) -> Run:
        """``population``: pass ``--population`` (a second run finds it in the directory)."""
        command = [
            str(ENCLAVE), "up", "--data-dir", str(data_dir), "--port", str(port),
            "--session-env", str(analysis_environment()),
        ]  # fmt: skip
        if population:
            command += ["--population", str(POPULATION)]
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        run = cls(process)
        run.reader = threading.Thread(target=run._read, daemon=True)
        run.reader.start()
        return run

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_ready(self, timeout: float = 240) -> None:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if any(READY in line for line in self.lines):
                self.ready_after = time.monotonic() - started
                return
            if self.process.poll() is not None:
                time.sleep(0.5)  # let the reader catch up
                pytest.fail(f"enclave up exited {self.process.returncode}:\n{self.output[-4000:]}")
            time.sleep(0.2)
        self.interrupt()
        pytest.fail(f"enclave up not ready in {timeout} s:\n{self.output[-4000:]}")

    def interrupt(self) -> int:
        """Ctrl-C, as a terminal sends it; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=90)
        if self.reader is not None:
            self.reader.join(timeout=10)
        assert self.process.stdout is not None
        self.process.stdout.close()
        return code


@dataclass
class Probes:
    """What the tests check, gathered while each run was up."""

    data_dir: Path
    port: int
    first: Run
    second: Run
    login_status: int = 0
    queue_location: str = ""
    oauth_location: str = ""
    queue_after_oauth: str = ""
    first_code: int = -1
    first_left: list[int] = field(default_factory=list)
    second_login_status: int = 0
    journey: Journey | None = None
    second_code: int = -1
    second_left: list[int] = field(default_factory=list)


def account(output: str, username: str) -> Account:
    return Account(username, *credential(output, username))


def credential(output: str, username: str) -> tuple[str, str]:
    """The printed password and TOTP secret of ``username``."""
    block = re.search(rf"login {username}\s.*\n\s+password\s+(\S+)\n\s+TOTP secret\s+(\S+)", output)
    assert block, f"no credentials for {username} in:\n{output}"
    return block.group(1), block.group(2)


def hub_oauth_login(base: str, username: str, password: str, secret: str) -> str:
    """Log in to the hub with password and TOTP, then into the queue through the hub's
    OAuth; returns the queue page's text. The queue's cookie is Secure (sent by browsers to
    loopback over http, not by requests' jar), so it is carried by hand."""
    hub = requests.Session()
    page = hub.get(f"{base}/hub/login", timeout=30)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
    form = {"username": username, "password": password, "otp": pyotp.TOTP(secret).now()}
    if xsrf:
        form["_xsrf"] = xsrf.group(1)
    logged = hub.post(f"{base}/hub/login", data=form, allow_redirects=False, timeout=30)
    assert logged.status_code == 302 and "/hub/login" not in logged.headers["location"]
    start = requests.get(f"{base}/services/review-queue/oauth/login", allow_redirects=False)
    cookie = {"Cookie": f"queue_session={start.cookies['queue_session']}"}
    granted = hub.get(base + start.headers["location"], allow_redirects=False, timeout=30)
    assert granted.status_code == 302, granted.text[:500]
    back = requests.get(base + granted.headers["location"], headers=cookie, allow_redirects=False)
    assert back.status_code == 303, back.text[:500]
    cookie = {"Cookie": f"queue_session={back.cookies['queue_session']}"}
    return requests.get(base + back.headers["location"], headers=cookie, timeout=30).text


def first_run(data_dir: Path, port: int) -> Probes:
    """Build, start, probe the hub and the queue as a researcher, Ctrl-C."""
    base = f"http://127.0.0.1:{port}"
    first = Run.start(data_dir, port)
    try:
        first.wait_ready()
        found = Probes(data_dir, port, first, first)
        found.login_status = requests.get(f"{base}/hub/login", timeout=30).status_code
        queue = requests.get(f"{base}/services/review-queue/", allow_redirects=False, timeout=30)
        found.queue_location = queue.headers.get("location", "")
        start = requests.get(
            f"{base}/services/review-queue/oauth/login", allow_redirects=False, timeout=30
        )
        found.oauth_location = start.headers.get("location", "")
        password, secret = credential(first.output, "ada")
        found.queue_after_oauth = hub_oauth_login(base, "ada", password, secret)
    finally:
        code = first.interrupt()
    found.first_code = code
    found.first_left = leftovers(plan.Layout(data_dir.resolve()), port)
    return found


def second_run(found: Probes, shots: Path) -> None:
    """Start again over the same directory, walk the whole journey in the browser, Ctrl-C."""
    base = f"http://127.0.0.1:{found.port}"
    second = Run.start(found.data_dir, found.port, population=False)
    found.second = second
    printed = found.first.output
    try:
        second.wait_ready()
        found.second_login_status = requests.get(f"{base}/hub/login", timeout=30).status_code
        checkers = (account(printed, "checker1"), account(printed, "checker2"))
        found.journey = walk(base, account(printed, "ada"), checkers, PROJECT, shots)
    finally:
        found.second_code = second.interrupt()
    found.second_left = leftovers(plan.Layout(found.data_dir.resolve()), found.port)


@pytest.fixture(scope="module")
def probes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probes]:
    require_root()
    proxy()
    # not under pytest's 0700 temporary root: the session accounts traverse to their mounts
    scratch = Path(tempfile.mkdtemp(prefix="up", dir="/tmp"))
    scratch.chmod(0o711)
    try:
        found = first_run(scratch / "data", free_port())
        second_run(found, tmp_path_factory.mktemp("journey"))
        yield found
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.xdist_group("hub-up")
def test_the_hub_login_page_answers(probes: Probes) -> None:
    assert probes.login_status == 200
    assert f"http://127.0.0.1:{probes.port}/hub/login" in probes.first.output


@pytest.mark.slow
@pytest.mark.xdist_group("hub-up")
def test_the_queue_answers_through_the_proxy_and_logs_in_with_hub_oauth_and_pkce(
    probes: Probes,
) -> None:
    assert f"http://127.0.0.1:{probes.port}/services/review-queue/" in probes.first.output
    assert probes.queue_location.startswith("/services/review-queue/login")
    authorize = urlsplit(probes.oauth_location)
    query = parse_qs(authorize.query)
    assert authorize.path == "/hub/api/oauth2/authorize"
    assert query["client_id"] == ["service-review-queue"]
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43  # base64url of a SHA-256 digest


@pytest.mark.slow
@pytest.mark.xdist_group("hub-up")
def test_a_researcher_reaches_the_queue_after_a_hub_login_with_totp(probes: Probes) -> None:
    assert "Ada Researcher" in probes.queue_after_oauth


@pytest.mark.slow
@pytest.mark.xdist_group("hub-up")
def test_credentials_are_printed_once_and_stored_nowhere_in_plain_text(probes: Probes) -> None:
    first, second = probes.first.output, probes.second.output
    for username in ("admin", "ada", "checker1", "checker2"):
        password, secret = credential(first, username)
        assert first.count(password) == 1 and password not in second
        assert secret not in second
    assert len(re.findall(r"TOTP secret +[A-Z2-7]{32}\b", first)) == 4
    assert not re.search(r"TOTP secret +[A-Z2-7]{32}\b", second)
    assert "printed by the first" in second and "set-password" in second
    password, _ = credential(first, "checker1")
    for path in probes.data_dir.rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            data = path.read_bytes()
            assert password.encode() not in data, path
    for name in ("secret-key", "hub-api-token"):
        assert (probes.data_dir / "secrets" / name).stat().st_mode & 0o777 == 0o600
    assert (probes.data_dir / "secrets").stat().st_mode & 0o777 == 0o700


@pytest.mark.slow
@pytest.mark.xdist_group("hub-up")
def test_ctrl_c_stops_everything_cleanly(probes: Probes) -> None:
    assert probes.first_code == 0 and probes.second_code == 0
    assert probes.first_left == [] and probes.second_left == []
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    assert str(probes.data_dir) not in ps
    assert f"127.0.0.1:{probes.port}" not in ps
    assert probes.first.output.rstrip().endswith("stopped")


@pytest.mark.slow
@pytest.mark.xdist_group("hub-up")
def test_a_second_run_reuses_the_data(probes: Probes) -> None:
    assert "(built:" in probes.first.output and "link" in probes.first.output
    assert "(reused)" in probes.second.output
    assert "scoring pairs" not in probes.second.output  # no linkage
    assert probes.second_login_status == 200
    assert probes.second.ready_after < 45, probes.second.ready_after


def walked(probes: Probes) -> Journey:
    """The journey, which must have gone through to the end."""
    journey = probes.journey
    assert journey is not None
    if journey.error:
        log = (probes.data_dir / "logs" / "hub.log").read_text(errors="replace")[-8000:]
        pytest.fail(
            f"{journey.error}\nsteps done (s): {journey.seconds}\n"
            f"screenshot: {journey.screenshot}\nhub log:\n{log}"
        )
    return journey


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("hub-up")
def test_a_notebook_table_goes_through_two_checkers_to_the_researchers_download(
    probes: Probes,
) -> None:
    journey = walked(probes)
    print("journey steps (s):", journey.seconds)  # shown with -rP: the report's timings
    assert "PASS" in journey.cell_output
    assert journey.statuses == ["pending", "submitted", "released"]
    bundle = probes.data_dir / "projects" / PROJECT / "outbox" / "ada" / journey.bundle
    assert journey.downloaded == (bundle / "people_by_sex.csv").read_bytes()
    # the same table computed here, outside, from the extract the sandbox had read-only
    extract = probes.data_dir / "projects" / PROJECT / "data" / "health-demographics.parquet"
    expected = pd.read_parquet(extract).groupby("sex")["birth_year"].count()
    table = pd.read_csv(io.BytesIO(journey.downloaded), index_col="sex")["count"]
    assert table.to_dict() == expected.to_dict() and table.sum() > POPULATION // 2


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("hub-up")
def test_on_the_journey_the_table_leaves_only_through_the_release(probes: Probes) -> None:
    journey = walked(probes)
    assert journey.files_status == 403  # the session's /files/ from the researcher's browser
    assert journey.early_release_status == 404  # nothing released yet
    assert journey.early_review_download_status == 403  # the checkers' copy is theirs only
    refusal = f"Cannot start {PROJECT}: you are not in its group."  # checkers: the queue only
    assert refusal in journey.checker_spawn_text and "403" in journey.checker_spawn_text


def test_missing_prerequisites_name_the_fix() -> None:
    nothing = Path("/nonexistent/chp")
    problems, root_fixes = plan.missing(euid=1000, which=lambda _: None, chp=nothing)
    text = "\n".join(problems)
    assert "sudo make up" in text
    assert "apt-get install bubblewrap" in text
    assert "make chp" in text and not root_fixes
    problems, root_fixes = plan.missing(euid=0, which=lambda _: None, chp=Path(sys.executable))
    assert len(problems) == 1 and "bubblewrap" in problems[0] and root_fixes
    assert plan.missing(euid=0, which=lambda n: f"/usr/bin/{n}", chp=nothing) == ([], True)


def test_an_earlier_checker_demo_is_named_with_its_fix(tmp_path: Path) -> None:
    (tmp_path / "demo").mkdir()
    hint = plan.stale_checker_demo(tmp_path)
    assert hint is not None and f"rm -r {tmp_path / 'demo'}" in hint
    (tmp_path / "demo.json").write_text("{}")
    assert plan.stale_checker_demo(tmp_path) is None


def test_the_hub_registers_the_queue_as_an_oauth_service_and_requires_pkce(
    tmp_path: Path,
) -> None:
    from traitlets.config import Config

    c = Config()
    secret = tmp_path / "secret-key"
    options = HubOptions(run_dir=tmp_path / "run", queue_port=8123, queue_secret_file=secret)
    configure(c, Settings(data_dir=tmp_path), options)
    assert c.JupyterHub.oauth_require_pkce is True
    queue = {s["name"]: s for s in c.JupyterHub.services}["review-queue"]
    assert queue["url"] == "http://127.0.0.1:8123"
    assert queue["oauth_no_confirm"] is True
    assert queue["oauth_client_allowed_scopes"] == ["access:services!service=review-queue"]
    assert f"--secret-key-file={secret}" in queue["command"]
    assert not any("secret" in key.lower() for key in queue["environment"])
    user = {r["name"]: r for r in c.JupyterHub.load_roles}["user"]
    assert "access:services!service=review-queue" in user["scopes"] and "self" in user["scopes"]
    configure(c2 := Config(), Settings(data_dir=tmp_path), HubOptions(run_dir=tmp_path / "r"))
    assert "review-queue" not in {s["name"] for s in c2.JupyterHub.services}


def test_a_later_run_keeps_the_population_already_built(tmp_path: Path) -> None:
    assert plan.population(tmp_path, None) == 40_000
    (tmp_path / "demo.json").write_text('{"format": "enclave-demo/1", "population": 2000}')
    assert plan.population(tmp_path, None) == 2000
    assert plan.population(tmp_path, 500) == 500
