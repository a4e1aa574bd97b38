"""Profile the queue's three read endpoints in-process: SQL statements, round trips and CPU
per request, and where the CPU goes (cProfile), without a server or concurrent clients.

Runs against a database seeded by ``bench_queue.py --keep`` (or any queue database with
checkers enrolled): ``--cast`` is a JSON file ``{"url", "data_dir", "secrets": {email:
totp_secret}, "bearers": {email: token}}``. Each endpoint is called ``--calls`` times through
Flask's test client as the checkers, after a short warm-up.

Usage: python benchmarks/profile_queue.py --cast cast.json [--calls 300] [--profile 25]
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import io
import json
import pstats
import random
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyotp
import queue_seed as qs
from flask.testing import FlaskClient
from sqlalchemy import event, select
from sqlalchemy.engine import Engine

from enclave.settings import Settings
from output_checker.queue import models as m
from output_checker.queue.web import create_app

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
BASE = "https://localhost"  # the session cookie is Secure


# Functions timed (CPU) with --parts: (module, attribute) as the callers look them up.
PARTS = (
    ("enclave.control.service.login_guard", "session_person"),
    ("enclave.control.service.tokens", "verify_token"),
    ("output_checker.queue.service", "list_requests"),
    ("output_checker.queue.service", "reviewer_load"),
    ("output_checker.queue.service", "view_request"),
    ("output_checker.queue.web.requests", "render_template"),
    ("output_checker.queue.web.api", "plain"),
    ("output_checker.queue.web.api", "jsonify"),
)


class Parts:
    """CPU time spent in each of PARTS (outermost calls only), by wrapping them."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self.depth = 0
        for module, name in PARTS:
            holder = importlib.import_module(module)
            setattr(holder, name, self._wrap(name, getattr(holder, name)))

    def _wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self.depth += 1
            start = time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.depth -= 1
                if self.depth == 0:
                    spent = time.process_time() - start
                    self.spent[name] = self.spent.get(name, 0.0) + spent

        return timed

    def report(self, calls: int) -> str:
        parts = sorted(self.spent.items(), key=lambda item: -item[1])
        self.spent = {}
        return "  ".join(f"{name} {1000 * spent / calls:.2f}" for name, spent in parts)


class Counter:
    """SQL statements (and transactions ended) the engine runs, counted by listeners."""

    def __init__(self, engine: Engine) -> None:
        self.statements = 0
        self.commits = 0
        self.checkouts = 0
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._commit)
        event.listen(engine.pool, "checkout", self._checkout)

    def _statement(self, *_args: Any) -> None:
        self.statements += 1

    def _commit(self, *_args: Any) -> None:
        self.commits += 1

    def _checkout(self, *_args: Any) -> None:
        self.checkouts += 1

    def snapshot(self) -> tuple[int, int, int]:
        return self.statements, self.commits, self.checkouts


def login(client: FlaskClient, email: str, secret: str) -> None:
    page = client.get("/login", base_url=BASE).get_data(as_text=True)
    token = CSRF.search(page)
    assert token, "no CSRF token on the login form"
    form = {
        "email": email,
        "password": qs.PASSWORD,
        "code": pyotp.TOTP(secret).now(),
        "csrf_token": token.group(1),
    }
    answer = client.post("/login", data=form, base_url=BASE)
    assert answer.status_code == 303, f"login failed: {answer.status_code}"


def measure(
    name: str,
    counter: Counter,
    calls: int,
    call: Callable[[int], None],
    profile: int,
    parts: Parts | None,
) -> dict[str, float]:
    for i in range(min(20, calls)):  # warm-up: compiled caches, templates, connections
        call(i)
    if parts:
        parts.report(1)
    before = counter.snapshot()
    profiler = cProfile.Profile(time.process_time) if profile else None  # CPU, not wall
    cpu, wall = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    for i in range(calls):
        call(i)
    if profiler:
        profiler.disable()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    after = counter.snapshot()
    out = {
        "statements": (after[0] - before[0]) / calls,
        "commits": (after[1] - before[1]) / calls,
        "checkouts": (after[2] - before[2]) / calls,
        "cpu_ms": 1000 * cpu / calls,
        "wall_ms": 1000 * wall / calls,
    }
    print(
        f"{name:<8} {out['statements']:5.1f} statements  {out['commits']:4.1f} commits  "
        f"{out['checkouts']:4.1f} checkouts  {out['cpu_ms']:6.2f} ms CPU  "
        f"{out['wall_ms']:6.2f} ms wall (profiled: {bool(profiler)})",
        flush=True,
    )
    if parts:
        print(f"         ms CPU in: {parts.report(calls)}", flush=True)
    if profiler:
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text).sort_stats("cumulative")
        stats.print_stats(profile)
        stats.sort_stats("tottime").print_stats(profile)
        print(text.getvalue())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cast", type=Path, required=True)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--profile", type=int, default=0, help="print the top N functions")
    parser.add_argument("--parts", action="store_true", help="CPU ms in the main parts")
    parser.add_argument("--only", choices=("page", "list", "detail"), action="append")
    args = parser.parse_args(argv)
    cast = json.loads(args.cast.read_text())
    settings = Settings(
        data_dir=Path(cast["data_dir"]), database_url=cast["url"], secret_key="p" * 40
    )
    parts = Parts() if args.parts else None
    app = create_app(settings)
    engine = app.extensions["enclave"].context.engine
    counter = Counter(engine)
    clients = []
    for email, secret in cast["secrets"].items():
        client = app.test_client()
        login(client, email, secret)
        clients.append(client)
    bearers = [{"Authorization": f"Bearer {t}"} for t in cast["bearers"].values()]
    with engine.connect() as c:
        visible = list(c.scalars(select(m.Request.uuid).where(m.Request.review_turn >= 1)))
    rng = random.Random(1)
    ids = [rng.choice(visible) for _ in range(args.calls + 20)]

    def page(i: int) -> None:
        answer = clients[i % len(clients)].get("/requests", base_url=BASE)
        assert answer.status_code == 200 and b'id="queue"' in answer.data, answer.status_code

    def listing(i: int) -> None:
        answer = clients[0].get("/api/v1/requests", headers=bearers[i % len(bearers)])
        assert answer.status_code == 200 and answer.json["items"], answer.status_code

    def detail(i: int) -> None:
        answer = clients[0].get(f"/api/v1/requests/{ids[i]}", headers=bearers[i % len(bearers)])
        assert answer.status_code == 200, answer.status_code

    for name, call in (("page", page), ("list", listing), ("detail", detail)):
        if not args.only or name in args.only:
            measure(name, counter, args.calls, call, args.profile, parts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
