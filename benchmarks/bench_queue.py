"""Benchmark the review queue under load on PostgreSQL (issue 5): 10,000 requests, 50
concurrent clients on loopback, the app under gunicorn.

Targets: the queue list page (HTML, as an output checker), ``GET /api/v1/requests`` and
``GET /api/v1/requests/{id}`` answer with p95 under 150 ms; 1,000 concurrent submissions
(create, upload a CSV with its checker record, describe the group, submit) lose nothing:
afterwards exactly 1,000 new requests are submitted, each with the snapshot of the bytes sent,
and the audit chain verifies.

The database ``--database`` on ``--postgres`` is dropped and created again on every run.

The runs without think time (50 requests always in flight) are driven by ``wrk`` (installed
with apt-get when missing): Python client threads would take much of the CPU of the server
they measure. The think-time runs and the submissions use Python client threads.

Usage: python benchmarks/bench_queue.py [--requests 10000] [--clients 50] [--calls 1000]
       [--submissions 1000] [--workers 4] [--threads 2] [--wrk-threads 2] [--wrk-seconds N]
       [--write PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import cpu_usage
import psycopg
import pyotp
import queue_seed as qs
import wrk_load
from machine import cpu_and_ram
from queue_load import Client, Failed, Outcome, json_body, multipart, run
from sqlalchemy import Engine, func, select

from enclave.control import audit
from enclave.control.context import Context
from enclave.control.db import make_engine
from enclave.control.models import AuditEvent
from output_checker.queue import models as m
from output_checker.queue.storage import BlobStore, sha256_of

COMMAND = "python benchmarks/bench_queue.py"
SECRET_KEY = "bench-queue-" + "s" * 40
TARGET_P95_MS = 150.0
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
BIN = Path(sys.executable).parent
CORES = len(os.sched_getaffinity(0))
T = TypeVar("T")


def _load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "unknown"


def _say(message: str) -> None:
    print(message, flush=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# ----- database --------------------------------------------------------------------------------


def fresh_database(server: str, name: str) -> str:
    """Drop and create database ``name`` on ``server``; returns its URL."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise SystemExit(f"bench_queue: database name {name!r} must be lower-case letters/digits/_")
    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {name}")
    return f"{server}/{name}"


def drop_database(server: str, name: str) -> None:
    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def migrate(env: Mapping[str, str]) -> list[str]:
    """``enclave admin init`` then ``output-checker init``; returns what they printed."""
    said = []
    for command in ([str(BIN / "enclave"), "admin", "init"], [str(BIN / "output-checker"), "init"]):
        done = subprocess.run(command, env=dict(env), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"bench_queue: {' '.join(command[-2:])} failed: {done.stderr.strip()}")
        said.append(done.stdout.strip())
    return said


def vacuum(url: str) -> None:
    """VACUUM ANALYZE: a queue that has run for two years has its statistics."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")


def census(engine: Engine) -> dict[str, Any]:
    """Rows by table and requests by status."""
    with engine.connect() as c:
        by_status = dict(
            c.execute(select(m.Request.status, func.count()).group_by(m.Request.status)).all()
        )
        rows = {
            name: int(c.scalar(select(func.count()).select_from(table)) or 0)
            for name, table in m.QueueBase.metadata.tables.items()
            if name.startswith("queue_")
        }
        rows["audit_events"] = int(c.scalar(select(func.count()).select_from(AuditEvent)) or 0)
    return {"by_status": by_status, "rows": rows}


# ----- the server ------------------------------------------------------------------------------


def start_gunicorn(
    env: Mapping[str, str], port: int, workers: int, threads: int, log: Path
) -> subprocess.Popen[bytes]:
    """The queue app under gunicorn (gthread workers), ready to answer."""
    command = [
        str(BIN / "gunicorn"),
        "--workers",
        str(workers),
        "--worker-class",
        "gthread",
        "--threads",
        str(threads),
        "--bind",
        f"127.0.0.1:{port}",
        "--keep-alive",
        "30",
        "--backlog",
        "2048",
        # each worker its own listening socket: the kernel spreads the kept-alive connections
        # evenly, rather than the first worker to wake taking most of them
        "--reuse-port",
        "--timeout",
        "120",
        "output_checker.queue.web:create_app()",
    ]
    handle = log.open("wb")
    process = subprocess.Popen(command, env=dict(env), stdout=handle, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            probe = Client("127.0.0.1", port)
            probe.call("probe", "GET", "/login")
            probe.close()
            return process
        except (OSError, Failed) as error:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise SystemExit(
                    f"bench_queue: gunicorn did not start ({error}); see {log}"
                ) from None
            time.sleep(0.2)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def login(port: int, email: str, secret: str) -> str:
    """Log in through the login form (password and TOTP); returns the session cookie.

    The cookie is Secure (meant for TLS behind the proxy), so it is carried by hand here."""
    client = Client("127.0.0.1", port)
    page = client.call("login", "GET", "/login", expect=200)
    token = CSRF.search(page.decode())
    assert token, "no CSRF token on the login form"
    cookie = _cookie(client)
    form = urllib.parse.urlencode(
        {
            "email": email,
            "password": qs.PASSWORD,
            "code": pyotp.TOTP(secret).now(),
            "csrf_token": token.group(1),
        }
    ).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie}
    client.call("login", "POST", "/login", headers=headers, body=form, expect=303)
    session = _cookie(client)
    # Follow the redirect as a browser does: the page shows (and so clears) the login's
    # message; the clients then send the session as the browser holds it after that.
    client.call("login", "GET", "/requests", headers={"Cookie": session})
    session = _cookie(client)
    client.close()
    return session


def _cookie(client: Client) -> str:
    """The queue_session cookie the last response set (as a Cookie header value)."""
    response = client.last
    assert response is not None
    for name, value in response.getheaders():
        if name.lower() == "set-cookie" and value.startswith("queue_session="):
            return value.split(";", 1)[0]
    raise RuntimeError("no session cookie set")


# ----- the runs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuShare:
    """CPU seconds used during a measured run, by whom, and its wall time."""

    wall: float
    generator: float  # the load generator: wrk, or this process's client threads
    server: float  # gunicorn's master and workers
    database: float  # PostgreSQL backends connected to the benchmark's database
    machine: float  # every core busy, whoever used it

    def percent(self, seconds: float) -> float:
        """``seconds`` of CPU as a share of all the machine's cores over the run."""
        return 100 * seconds / (self.wall * CORES)


class CpuWatch:
    """Snapshots of the CPU time of the server, the database's backends and the machine."""

    def __init__(self, server_pid: int, url: str) -> None:
        self.server_pid = server_pid
        self.url = url

    def _pids(self) -> tuple[list[int], list[int]]:
        with psycopg.connect(self.url, autocommit=True) as c:
            backends = [
                int(row[0])
                for row in c.execute(
                    "SELECT pid FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ]
        return [self.server_pid, *cpu_usage.children(self.server_pid)], backends

    def run(
        self, work: Callable[[], T], generator: Callable[[T], float] | None = None
    ) -> tuple[T, CpuShare]:
        """``work()`` and the CPU used while it ran; the generator's CPU is ``generator(result)``
        (wrk's own), else this process's."""
        server, backends = self._pids()
        before = cpu_usage.snapshot([*server, *backends])
        busy, own, wall = cpu_usage.machine_busy(), time.process_time(), time.perf_counter()
        result = work()
        wall, own = time.perf_counter() - wall, time.process_time() - own
        busy = cpu_usage.machine_busy() - busy
        server_after, backends_after = self._pids()
        server_cpu = cpu_usage.spent(before, cpu_usage.snapshot(server_after))
        database_cpu = cpu_usage.spent(before, cpu_usage.snapshot(set(backends + backends_after)))
        return result, CpuShare(
            wall=wall,
            generator=generator(result) if generator else own,
            server=server_cpu,
            database=database_cpu,
            machine=busy,
        )


def preflight(port: int, jobs: Mapping[str, Callable[[Client, int, int], None]], n: int) -> None:
    """Each job once per credential through the Python client, with its content checks: wrk
    then only checks the status (and a marker), so a bad login fails here, plainly."""
    client = Client("127.0.0.1", port)
    try:
        for job in jobs.values():
            for i in range(n):
                job(client, i, i)
    finally:
        client.close()


def saturate(
    port: int,
    args: argparse.Namespace,
    watch: CpuWatch,
    requests: Sequence[wrk_load.Request],
    expect: str | None,
    random_pick: bool,
) -> tuple[wrk_load.WrkOutcome, CpuShare]:
    """A wrk warm-up run (not kept), then the measured one with the CPU used during it. The
    measured run lasts long enough for about ``--calls`` calls at the warm-up's rate (unless
    ``--wrk-seconds``), within 3 to 120 s."""

    def once(seconds: int) -> wrk_load.WrkOutcome:
        return wrk_load.run(
            port,
            requests,
            seconds=seconds,
            connections=args.clients,
            threads=args.wrk_threads,
            expect=expect,
            random=random_pick,
            seed=args.seed,
        )

    warm = once(args.wrk_warmup)
    seconds = args.wrk_seconds or min(120, max(3, math.ceil(args.calls / warm.stats()["rate"])))
    return watch.run(partial(once, seconds), generator=lambda found: found.cpu_seconds)


def reads(
    port: int,
    args: argparse.Namespace,
    cookies: Sequence[str],
    bearers: Sequence[str],
    visible: Sequence[str],
    watch: CpuWatch,
) -> tuple[dict[str, Outcome | wrk_load.WrkOutcome], dict[str, CpuShare]]:
    """The three read scenarios, each with ``args.clients`` clients: saturated by wrk, as
    people (think time) by Python client threads."""
    rng = random.Random(args.seed)
    ids = [rng.choice(visible) for _ in range(args.calls)]

    def page(client: Client, n: int, _i: int) -> None:
        body = client.call(
            "page", "GET", "/requests", headers={"Cookie": cookies[n % len(cookies)]}
        )
        if b'id="queue"' not in body:
            raise Failed("the queue page has no queue table (not logged in?)")

    def listing(client: Client, n: int, _i: int) -> None:
        body = client.call(
            "list", "GET", "/api/v1/requests", headers={"Authorization": bearers[n % len(bearers)]}
        )
        if not json.loads(body)["items"]:
            raise Failed("the queue API listed nothing")

    def detail(client: Client, n: int, i: int) -> None:
        headers = {"Authorization": bearers[n % len(bearers)]}
        client.call("detail", "GET", f"/api/v1/requests/{ids[i % len(ids)]}", headers=headers)

    jobs = {"page": page, "list": listing, "detail": detail}
    preflight(port, jobs, max(len(cookies), len(bearers)))
    # what wrk sends: each credential in turn; the detail a random one of the picked ids
    saturating = {
        "page": ([wrk_load.Request("/requests", "Cookie", c) for c in cookies], 'id="queue"'),
        "list": (
            [wrk_load.Request("/api/v1/requests", "Authorization", b) for b in bearers],
            '"items"',
        ),
        "detail": (
            [
                wrk_load.Request(
                    f"/api/v1/requests/{rid}", "Authorization", bearers[i % len(bearers)]
                )
                for i, rid in enumerate(ids)
            ],
            None,
        ),
    }
    out: dict[str, Outcome | wrk_load.WrkOutcome] = {}
    cpu: dict[str, CpuShare] = {}
    for name, job in jobs.items():
        requests, expect = saturating[name]
        found, share = saturate(port, args, watch, requests, expect, random_pick=name == "detail")
        out[f"{name}/saturated"], cpu[f"{name}/saturated"] = found, share
        _report_run(name, "saturated", found, share)
        users, share = watch.run(
            partial(
                run,
                "127.0.0.1",
                port,
                clients=args.clients,
                total=args.think_calls,
                job=job,
                think=args.think,
            )
        )
        out[f"{name}/users"], cpu[f"{name}/users"] = users, share
        _report_run(name, "users", users, share)
    return out, cpu


def _report_run(
    name: str, mode: str, found: Outcome | wrk_load.WrkOutcome, share: CpuShare
) -> None:
    s = found.stats(name)
    _say(
        f"  {name:<7} {mode:<9} {s['n']:>5} calls  {s['rate']:6.1f}/s  "
        f"p50 {s['p50']:6.1f}  p95 {s['p95']:6.1f}  p99 {s['p99']:6.1f} ms  "
        f"errors {failures(found)}  CPU % of {CORES} cores: generator "
        f"{share.percent(share.generator):.0f}, server {share.percent(share.server):.0f}, "
        f"database {share.percent(share.database):.0f}, machine {share.percent(share.machine):.0f}"
    )


def generator(outcome: Outcome | wrk_load.WrkOutcome) -> str:
    """Which load generator made a run, for the report."""
    if isinstance(outcome, wrk_load.WrkOutcome):
        return f"wrk, {outcome.threads} threads, {outcome.connections} connections"
    return "Python threads (http.client)"


def _wrk_version() -> str:
    done = subprocess.run(
        [wrk_load.ensure_wrk(), "--version"], capture_output=True, text=True, check=False
    )
    found = re.search(r"wrk (\S+)", done.stdout + done.stderr)
    return f"wrk {found.group(1)}" if found else "wrk"


def failures(outcome: Outcome | wrk_load.WrkOutcome) -> int:
    """Failed calls of a run."""
    if isinstance(outcome, wrk_load.WrkOutcome):
        return outcome.failures
    return len(outcome.errors)


def submissions(
    port: int, args: argparse.Namespace, authors: Sequence[tuple[str, str]]
) -> tuple[Outcome, dict[str, str]]:
    """``args.submissions`` submissions by ``len(authors)`` clients, each a researcher of
    their own project; returns the outcome and request id -> sha256 of the bytes sent."""
    base = qs.table("by-sex.csv", ["sex"])
    sent: dict[str, str] = {}
    lock = threading.Lock()

    def submit(client: Client, n: int, i: int) -> None:
        project, bearer = authors[n]
        auth = {"Authorization": bearer}
        output = base.with_suffix(qs.blank_lines(i, marker=b"\n\r\n"))
        body, headers = json_body({"project": project, "title": f"Bench submission {i}"})
        made = client.call(
            "create", "POST", "/api/v1/requests", headers={**auth, **headers}, body=body, expect=201
        )
        rid = json.loads(made)["id"]
        form, content_type = multipart(
            {"group": "tables", "kind": "output", "record": json.dumps(output.record)},
            {"file": (output.name, output.data)},
        )
        client.call(
            "upload",
            "POST",
            f"/api/v1/requests/{rid}/files",
            headers={**auth, "Content-Type": content_type},
            body=form,
            expect=201,
        )
        body, headers = json_body(
            {"name": "tables", "context": "Counts by sex", "controls": "Cells of 100 people"}
        )
        client.call(
            "group",
            "POST",
            f"/api/v1/requests/{rid}/groups",
            headers={**auth, **headers},
            body=body,
        )
        client.call("submit", "POST", f"/api/v1/requests/{rid}/submit", headers=auth)
        with lock:
            sent[rid] = sha256_of(output.data)

    outcome = run("127.0.0.1", port, clients=len(authors), total=args.submissions, job=submit)
    return outcome, sent


def verify(
    engine: Engine, data_dir: Path, sent: Mapping[str, str], since: datetime
) -> dict[str, Any]:
    """What exists after the submissions, checked against what the clients were told."""
    with engine.connect() as c:
        new = c.execute(
            select(m.Request.id, m.Request.uuid, m.Request.status).where(
                m.Request.created_at >= since
            )
        ).all()
        files = c.execute(
            select(m.File.request_id, m.File.sha256, m.File.size).where(
                m.File.request_id.in_([r.id for r in new] or [-1])
            )
        ).all()
    by_request: dict[int, list[Any]] = {}
    for f in files:
        by_request.setdefault(f.request_id, []).append(f)
    store = BlobStore.for_data_dir(data_dir)
    good = 0
    for r in new:
        mine = by_request.get(r.id, [])
        if (
            r.status == "submitted"
            and len(mine) == 1
            and sent.get(r.uuid) == mine[0].sha256
            and store.verify(mine[0].sha256)
        ):
            good += 1
    report = audit.verify(engine)
    return {
        "new": len(new),
        "submitted": sum(r.status == "submitted" for r in new),
        "acknowledged": len(sent),
        "matching": good,
        "unacknowledged": len({r.uuid for r in new} - set(sent)),
        "chain_ok": report.ok,
        "chain": report.summary(),
        "chain_events": report.checked,
    }


# ----- the report -------------------------------------------------------------------------------


def table_md(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


LABELS = {
    "page": "Queue list page `GET /requests` (HTML, output checker)",
    "list": "`GET /api/v1/requests` (output checker's token)",
    "detail": "`GET /api/v1/requests/{id}` (random visible request; audited view)",
}
STEPS = {
    "create": "`POST /api/v1/requests`",
    "upload": "`POST .../files` (CSV + checker record)",
    "group": "`POST .../groups`",
    "submit": "`POST .../submit` (server re-check)",
}

SATURATION = """\
With no think time, {clients} requests are always in flight and the server is saturated: by
Little's law the mean time in the system is clients / throughput ({clients} / {page_rate:.0f}
per s = {page_little:.0f} ms for the page, {list_little:.0f} ms for the list API,
{detail_little:.0f} ms for one request), so p95 < 150 ms at {clients} in flight needs a
throughput above about {clients} / 0.15 s = 330 requests per second on these 2 shared cores.
The "think time" runs are the same {clients} clients as people: each waits a random time
(exponential, mean given) after every answer before asking again.
"""

CPU_TEXT = """\
CPU used during each measured run, as a percentage of the machine's {cores} cores over the
run's wall time (the load generator, the server, the benchmark database's PostgreSQL backends,
and everything busy on the machine, other work included; `/proc`). The load generator must
not take the server's CPU: that is why the runs without think time use wrk.
"""

CHANGES = """\
## What changed for these targets

Measured once on the code before these changes (10,000 requests, 5 clients with no think
time, 100 calls each, load average about 8): the list page 1.2 pages/s with p50 3.8 s, the
list API 1.1/s with p50 4.3 s, one request 9.8/s with p50 475 ms. The overview read every
visible request (about 8,400 for a checker), counted outputs and reviews with aggregates
over whole tables, and filtered and sliced in Python, then rendered or serialised 200 rows;
the checkers' open-review panel fetched every review of every request; a request page's
audited view re-ran every permission check inside the serialised write transaction. Now:
filtering, counting (correlated per-row counts) and paging happen in the database, on a new
index on `(status_changed_at, id)` (migration `q0002`); the list page and `GET
/api/v1/requests` show 50 rows by default (`?page=`, `?limit=` up to 200, `next_page` in the
API, previous/next links on the page); the open-review panel is one aggregate over the
requests under review; `view_request` checks the rules once in the read and holds the write
lock only to append the view event; the request summary on a request page comes from the
facts already loaded instead of three more queries.

Then (in-process profile, `benchmarks/profile_queue.py`, per request; statements exclude
BEGIN, COMMIT and the pool's ping): the list page 17 to 7 statements in 4 to 3
transactions, the list API 10 to 4, one request 32 to 21 (CPU about 28 to 18 ms, 20 to
15 ms and 40 to 30 ms, measured beside a test run). Read transactions open with `BEGIN READ
ONLY` instead of a separate `SET`; the login session's person and logout check are one
read; a bearer token, its owner and their roles one query; the acting person one query
(roles joined, accreditations not loaded); the overview selects the summary's columns from
statements built once; a request page reuses the rows its rules were checked on and reads
its files' versions in one query; the overview's row links are routed once. That was not
enough: at about 15-20 ms of CPU per request, 50 clients always in flight saw p95 of 1-2 s
(43 pages/s, 82 list calls/s).

Then the read cache (`enclave.control.readcache`, docs/review-queue.md): every write
transaction moves a state version on, under the write lock; each web process keeps the
person behind a session or token, the overview's rows and open reviews, a request's view,
and the rendered list page (to the minute) or the list API's JSON, each for its reader and
only while the version stands still. A list call that finds nothing changed reads one row
(the version): about 2-3 ms of CPU under gunicorn instead of 15-20. A page view's audit
event no longer moves the version (nothing kept depends on it). The JSON conversion looks
up each view class's fields once, and the session cookie is written only when the session
changes (`SESSION_REFRESH_EACH_REQUEST=False`; sessions end 8 hours after login in any
case). Gunicorn: 4 single-process workers with 2 threads each and `--reuse-port` did better
on these 2 cores than 3 with 8 threads (less lock contention, connections spread evenly).
The throughput at 50 in flight varies by about a third from run to run on this shared
machine (400 to 950 list calls per second in trial runs), and with it the p95.

Then the version read itself (`enclave.control.db.VersionReader`): through the engine it
cost a pool checkout with its ping, a Connection, SQLAlchemy's execution and the reset on
return, about 0.3 ms of CPU and two round trips beside the statement; a server's read cache
now reads it on PostgreSQL connections of a small pool of its own, in autocommit, one
statement (a few tens of microseconds, one round trip), falling back on the engine on any
database error. In the in-process profile a cached list call went from 1 statement through
the pool and about 1.6 ms of CPU to none through the pool and about 0.7 ms (busy machine).
The runs without think time are now driven by wrk rather than Python threads (see Method), so
the server keeps the CPU the Python clients took.
"""

METHOD = """\
## Method

- **Database.** PostgreSQL on 127.0.0.1:5432, a dedicated database (`{database}`) dropped and
  created again by each run; schema by `enclave admin init` and `output-checker init`.
- **Provisioning** through the control plane's services: {projects} active projects, each with
  {members} accredited researcher members and an approved grant; {checkers} output checkers
  with no tie to any project (so each sees every request that has been submitted).
- **Seeding.** {templates} template requests were walked to every status through the queue's
  service layer (create, upload of tables made by the real checker with their records,
  describe, submit, votes, reviews, early return, reject, approve, the release worker,
  revoke). The rest were **cloned by direct inserts** from those templates: every row the
  service wrote for a template (request, groups, files, versions, votes, reviews, comments,
  void turns, release, release items and the audit events) copied with fresh ids and UUIDs,
  a random project, author and three checkers, and times shifted (finished requests over two
  years, open ones over the last 30 days). Each clone's files got bytes of their own (blank
  lines at the end, which the checker ignores), stored in the snapshot store and named by
  their sha256 in every row and record; released clones got their released-area copies and
  manifest; the audit events were re-chained with the control plane's hash, one by one, as
  the database's triggers require. Walking all of them through the service would take about
  as many write transactions as requests times twelve, serialised by the control plane's
  write lock. Then `VACUUM ANALYZE`.
- **Server.** `gunicorn --workers {workers} --worker-class gthread --threads {threads}
  --reuse-port 'output_checker.queue.web:create_app()'` on 127.0.0.1 (2 cores: {workers}
  processes use both while a request waits on the database; each has its own listening
  socket, so the kernel spreads the {clients} keep-alive connections evenly). Each process
  keeps what it read while the state version stands still (`enclave.control.readcache`,
  docs/review-queue.md): a list call reads one row (the version, on a connection of its own
  in autocommit) when nothing changed, and the first call after any write reads again. The
  outbox watcher and the release worker were not running.
- **Clients.** The HTML page is requested with the session cookie of a real login (password
  and TOTP, redirect followed as a browser does) of one of the {checkers} checkers, the API
  with their bearer tokens (each credential in turn); the detail is of a random request any
  checker may see, picked per call from {calls} picked ids (each call also appends its
  audited view event). Time is from sending to reading the whole answer. Each endpoint is
  measured twice:
  - **no think time, by `wrk`** ({wrk}, C, Debian package `wrk`): {clients} keep-alive
    connections over {wrk_threads} thread(s), each sending its next request as soon as the
    answer is read, so {clients} requests are always in flight. A Lua script sets the headers
    and counts answers that are not 2xx (and list pages without their queue table); wrk's
    own socket errors and timeouts (60 s) count as errors too. A {wrk_warmup} s warm-up run
    (not kept) is followed by the measured run, lasting {duration} (its calls are in the
    table). Why not the Python clients: {clients} Python threads need a large part of a core
    to keep {clients} requests in flight at several hundred calls a second, taken from the
    same {cores} cores as the server and PostgreSQL, so they measured the load generator as
    much as the server; wrk needs a small share of that (the CPU table). Before the wrk runs,
    each credential is tried once by the Python client with the full content checks (the
    page has its queue table, the list is not empty).
  - **as people, by Python client threads** ({clients} threads in one process, each with its
    own keep-alive connection, `http.client`): a random think time (exponential, mean
    {think:g} s) before every request ({think_calls} calls). At about a dozen calls a second
    they take little CPU.
  Throughput = measured calls / wall time of the run. CPU shares are read from `/proc`
  around each measured run: wrk's own from `wait4`, the Python clients' as this process's
  CPU time, gunicorn's master and workers, the PostgreSQL backends connected to the
  benchmark's database, and the whole machine (all cores busy, including other work), each as
  a percentage of the {cores} cores over the run's wall time.
- **Submissions.** {authors} clients, each a researcher of a different project with a bearer
  token, together make {submissions} submissions: create a request, upload a small CSV table
  (multipart, with its checker record, bytes unique to the submission), describe its group,
  submit (the server re-checks the output). Afterwards the database is checked: requests
  created during the run, their status, their one file's sha256 against the bytes each
  client sent, the snapshot re-read and re-hashed from the store, and the whole audit chain
  re-verified (`audit.verify`).
"""


def report(data: Mapping[str, Any]) -> str:
    args = data["args"]
    machine = data["machine"]
    modes = {
        "saturated": "none (always 50 in flight)",
        "users": f"{args.think:g} s mean",
    }
    read_rows, cpu_rows = [], []
    for key, outcome in data["reads"].items():
        name, mode = key.split("/")
        s = outcome.stats(name)
        tool = generator(outcome)
        read_rows.append(
            [
                LABELS[name],
                modes[mode],
                tool,
                f"{s['n']:,}",
                f"{failures(outcome)}",
                f"{s['rate']:.0f}",
                f"{s['p50']:.1f}",
                f"{s['p95']:.1f}",
                f"{s['p99']:.1f}",
                f"{s['max']:.0f}",
            ]
        )
        share: CpuShare = data["cpu"][key]
        cpu_rows.append(
            [
                LABELS[name],
                modes[mode],
                tool,
                f"{share.wall:.1f}",
                f"{s['n']:,}",
                *(
                    f"{share.percent(seconds):.0f}"
                    for seconds in (share.generator, share.server, share.database, share.machine)
                ),
            ]
        )
    sub: Outcome = data["submissions"]
    step_rows = []
    for label, text in STEPS.items():
        s = sub.stats(label)
        if s["n"]:
            step_rows.append(
                [
                    text,
                    f"{s['n']:,}",
                    f"{s['p50']:.1f}",
                    f"{s['p95']:.1f}",
                    f"{s['p99']:.1f}",
                    f"{s['max']:.0f}",
                ]
            )
    check = data["verified"]
    targets = []
    for key, outcome in data["reads"].items():
        name, mode = key.split("/")
        p95 = outcome.stats(name)["p95"]
        ok = p95 < TARGET_P95_MS and not failures(outcome)
        targets.append(
            [
                f"{LABELS[name]}, {args.clients} clients, think time {modes[mode]}",
                f"p95 < {TARGET_P95_MS:.0f} ms, no errors",
                f"p95 {p95:.1f} ms, {failures(outcome)} errors",
                "yes" if ok else "no",
            ]
        )
    lost = args.submissions - check["matching"]
    ok = (
        check["new"] == args.submissions
        and check["matching"] == args.submissions
        and check["chain_ok"]
        and not sub.errors
    )
    targets.append(
        [
            f"{args.submissions:,} concurrent submissions",
            "none lost: all submitted, snapshots match, audit chain verifies",
            f"{check['new']:,} new, {check['submitted']:,} submitted, {check['matching']:,} "
            f"matching the bytes sent, {len(sub.errors)} client errors, chain "
            + ("verifies" if check["chain_ok"] else "BROKEN"),
            "yes" if ok and lost == 0 else "no",
        ]
    )
    census_ = data["census"]
    seeded = sum(census_["by_status"].values())
    status_rows = [
        [s, f"{n:,}"] for s, n in sorted(census_["by_status"].items(), key=lambda x: -x[1])
    ]
    row_counts = ", ".join(f"{k} {v:,}" for k, v in sorted(census_["rows"].items()))
    phases = ", ".join(f"{k} {v:.0f} s" for k, v in data["phases"].items())
    parts = [
        "# Review queue benchmark\n",
        "Machine: "
        + ", ".join(f"{k} {v}" for k, v in machine.items())
        + f". Wall time of the whole benchmark: {data['elapsed']:.0f} s ({phases}). Load "
        f"average (1 min) at start {data['load'][0]}, at end {data['load'][1]}: the 2 cores are "
        "shared with other work, which inflates the times. The load generators (wrk without "
        "think time, Python threads with it) run on the same cores as the server and "
        f"PostgreSQL. Code measured: {data['commit']}.\n",
        f"Command: `{data['command']}`\n",
        "## Targets\n",
        table_md(["What", "Target", "Measured", "Met"], targets),
        "",
        f"## Reads: {args.clients} concurrent clients, {seeded:,} requests\n",
        SATURATION.format(
            clients=args.clients,
            **{
                f"{n}_rate": data["reads"][f"{n}/saturated"].stats(n)["rate"]
                for n in ("page", "list", "detail")
            },
            **{
                f"{n}_little": 1000
                * args.clients
                / data["reads"][f"{n}/saturated"].stats(n)["rate"]
                for n in ("page", "list", "detail")
            },
        ),
        table_md(
            [
                "Endpoint",
                "Think time",
                "Load generator",
                "Calls",
                "Errors",
                "Throughput (req/s)",
                "p50 (ms)",
                "p95 (ms)",
                "p99 (ms)",
                "max (ms)",
            ],
            read_rows,
        ),
        "",
        CPU_TEXT.format(cores=CORES),
        table_md(
            [
                "Endpoint",
                "Think time",
                "Load generator",
                "Wall (s)",
                "Calls",
                "Load generator CPU %",
                "gunicorn CPU %",
                "PostgreSQL CPU %",
                "Whole machine busy %",
            ],
            cpu_rows,
        ),
        "",
        f"## Submissions: {args.submissions:,} by {len(data['authors'])} concurrent clients\n",
        f"{sub.done:,} submissions completed in {sub.elapsed:.1f} s "
        f"({sub.done / sub.elapsed:.1f} submissions/s, {4 * sub.done / sub.elapsed:.0f} calls/s); "
        f"{len(sub.errors)} failed" + (f" (first: {sub.errors[0]})" if sub.errors else "") + ".\n",
        table_md(["Step", "Calls", "p50 (ms)", "p95 (ms)", "p99 (ms)", "max (ms)"], step_rows),
        "",
        f"Afterwards: {check['new']:,} requests created during the run, {check['submitted']:,} "
        f"of them submitted, {check['acknowledged']:,} acknowledged to the clients, "
        f"{check['matching']:,} with exactly one file whose sha256 is that of the bytes sent and "
        f"whose snapshot re-hashes to it, {check['unacknowledged']} not acknowledged; "
        f"{check['chain']}.\n",
        "## The seeded queue\n",
        table_md(["Status", "Requests"], status_rows),
        "",
        f"Rows (after the submissions): {row_counts}.\n",
        CHANGES,
        METHOD.format(
            database=args.database,
            projects=args.projects,
            members=args.members,
            checkers=args.checkers,
            templates=data["templates"],
            workers=args.workers,
            threads=args.threads,
            clients=args.clients,
            wrk=data["wrk"],
            wrk_threads=args.wrk_threads,
            wrk_warmup=args.wrk_warmup,
            duration=(
                f"{args.wrk_seconds} s"
                if args.wrk_seconds
                else f"long enough for about {args.calls:,} calls at the warm-up's rate "
                "(3 to 120 s)"
            ),
            cores=CORES,
            calls=args.calls,
            think=args.think,
            think_calls=args.think_calls,
            authors=len(data["authors"]),
            submissions=args.submissions,
        ),
    ]
    return "\n".join(parts)


def _machine() -> dict[str, str]:
    from importlib.metadata import version

    import sqlalchemy

    cpu, ram = cpu_and_ram()
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres") as c:
        row = c.execute("SHOW server_version").fetchone()
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": cpu,
        "ram": ram,
        "python": platform.python_version(),
        "PostgreSQL": str(row[0]).split()[0] if row else "unknown",
        "gunicorn": version("gunicorn"),
        "flask": version("flask"),
        "sqlalchemy": sqlalchemy.__version__,
        "psycopg": psycopg.__version__,
    }


# ----- main -------------------------------------------------------------------------------------


def build(
    args: argparse.Namespace,
    engine: Engine,
    data_dir: Path,
    url: str,
    phase: Callable[[str], None],
) -> tuple[qs.Cast, int]:
    """Provision, walk the templates, clone them; returns the cast and the template count."""
    real_now = datetime.now(UTC)
    start = real_now - timedelta(days=730)
    clock = qs.Clock(start - timedelta(days=1))
    ctx = Context(engine=engine, data_dir=data_dir, clock=clock)
    cast = qs.provision(
        ctx,
        n_projects=args.projects,
        per_project=args.members,
        n_checkers=args.checkers,
        until=(real_now + timedelta(days=365)).date(),
    )
    phase("provision")
    clock.now = start
    templates = qs.build_templates(ctx, clock, cast)
    phase("templates")
    qs.seed(
        ctx,
        templates,
        cast,
        total=args.requests,
        start=start,
        now=real_now,
        rng=random.Random(args.seed),
        progress=_say,
    )
    vacuum(url)
    phase("clone")
    return cast, len(templates)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="enclave_bench_queue")
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--projects", type=int, default=40)
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--checkers", type=int, default=10)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument(
        "--calls",
        type=int,
        default=1000,
        help="about this many measured calls per saturated run (and detail ids picked)",
    )
    parser.add_argument(
        "--wrk-warmup", type=int, default=3, help="seconds of wrk warm-up before each saturated run"
    )
    parser.add_argument(
        "--wrk-seconds",
        type=int,
        default=0,
        help="seconds of each saturated wrk run (default: --calls calls at the warm-up's rate)",
    )
    parser.add_argument(
        "--wrk-threads", type=int, default=2, choices=(1, 2), help="wrk threads (load generator)"
    )
    parser.add_argument(
        "--think", type=float, default=3.0, help="mean think time (s) of the 'users' runs"
    )
    parser.add_argument("--think-calls", type=int, default=500, help="calls per 'users' run")
    parser.add_argument("--submissions", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the database and data dir")
    parser.add_argument("--reuse", type=Path, metavar="DATA_DIR", help=argparse.SUPPRESS)
    parser.add_argument("--write", type=Path, help="write the markdown report here")
    parser.add_argument(
        "--cast",
        type=Path,
        help="write the checkers' credentials for benchmarks/profile_queue.py here (with --keep)",
    )
    args = parser.parse_args(argv)
    if args.clients > args.projects * args.members:
        parser.error("--clients may not exceed --projects x --members (one researcher each)")

    started = time.perf_counter()
    load_start = _load()
    phases: dict[str, float] = {}
    mark = time.perf_counter()

    def phase(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        phases[name] = now - mark
        mark = now
        _say(f"{name}: {phases[name]:.1f} s")

    if args.reuse:  # development: measure again on a database kept with --keep
        url, data_dir = f"{args.postgres}/{args.database}", args.reuse
    else:
        url, data_dir = (
            fresh_database(args.postgres, args.database),
            Path(tempfile.mkdtemp(prefix="bench_queue_")),
        )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ENCLAVE_", "JUPYTERHUB_"))},
        "ENCLAVE_DATABASE_URL": url,
        "ENCLAVE_DATA_DIR": str(data_dir),
        "ENCLAVE_SECRET_KEY": SECRET_KEY,
    }
    for line in migrate(env):
        _say(f"  {line}")
    phase("migrate")
    engine = make_engine(url)
    templates = 0
    if args.reuse:
        cast = qs.cast_of(args.projects, args.members, args.checkers)
    else:
        cast, templates = build(args, engine, data_dir, url, phase)
    seeded = census(engine)
    _say(f"  seeded: {seeded['by_status']}")

    live = Context(engine=engine, data_dir=data_dir)  # the real clock from here on
    secrets = {email: qs.enrol(live, email) for email in cast.checkers}
    bearers = [f"Bearer {qs.token(live, email, secrets[email])}" for email in cast.checkers]
    authors = []
    for n in range(args.clients):
        project = cast.projects[n % len(cast.projects)]
        email = cast.members[project][n // len(cast.projects)]
        authors.append((project, f"Bearer {qs.token(live, email)}"))
    with engine.connect() as c:
        visible = list(c.scalars(select(m.Request.uuid).where(m.Request.review_turn >= 1)))
    if args.cast:
        args.cast.write_text(
            json.dumps(
                {
                    "url": url,
                    "data_dir": str(data_dir),
                    "secrets": secrets,
                    "bearers": {
                        email: bearer.removeprefix("Bearer ")
                        for email, bearer in zip(cast.checkers, bearers, strict=True)
                    },
                }
            )
        )
    phase("credentials")

    port = _free_port()
    log = data_dir / "gunicorn.log"
    server = start_gunicorn(env, port, args.workers, args.threads, log)
    try:
        cookies = [login(port, email, secret) for email, secret in secrets.items()]
        phase("serve")
        read_outcomes, read_cpu = reads(
            port, args, cookies, bearers, visible, CpuWatch(server.pid, url)
        )
        phase("reads")
        since = datetime.now(UTC)
        sub, sent = submissions(port, args, authors)
        _say(f"  {sub.done} submissions in {sub.elapsed:.1f} s, {len(sub.errors)} errors")
        for error in sub.errors[:5]:
            _say(f"    {error}")
        phase("submissions")
    finally:
        stop(server)
    verified = verify(engine, data_dir, sent, since)
    _say(f"  verified: {verified}")
    after = census(engine)
    phase("verify")
    engine.dispose()
    load_end = _load()
    elapsed = time.perf_counter() - started
    failed = [e for o in read_outcomes.values() for e in o.errors[:3]]
    for error in failed:
        _say(f"  read error: {error}")
    if args.write:
        command = COMMAND + " " + " ".join(argv if argv is not None else sys.argv[1:])
        args.write.write_text(
            report(
                {
                    "args": args,
                    "machine": _machine(),
                    "reads": read_outcomes,
                    "cpu": read_cpu,
                    "wrk": _wrk_version(),
                    "submissions": sub,
                    "verified": verified,
                    "census": {"by_status": seeded["by_status"], "rows": after["rows"]},
                    "phases": phases,
                    "elapsed": elapsed,
                    "load": (load_start, load_end),
                    "commit": _commit(),
                    "command": command.strip(),
                    "templates": templates,
                    "authors": authors,
                }
            )
        )
        _say(f"wrote {args.write}")
    if not (args.keep or args.reuse):
        shutil.rmtree(data_dir, ignore_errors=True)
        drop_database(args.postgres, args.database)
    return 0


if __name__ == "__main__":
    sys.exit(main())
