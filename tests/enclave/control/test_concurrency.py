"""Fifty concurrent grant requests for one project: writes serialise, so no request is lost or
duplicated, each is audited once, and the chain stays intact."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

from enclave.control import audit
from enclave.control.context import Context
from enclave.control.errors import ControlError
from enclave.control.service import datasets, grants
from enclave.control.varspec import variable
from tests.enclave.control.factories import World, make_project

DATASETS = 10
REQUESTS_PER_DATASET = 5


def test_fifty_concurrent_grant_requests(ctx: Context, world: World) -> None:
    make_project(ctx, world, "busy", "active", grant=None)
    for i in range(DATASETS):
        datasets.register_dataset(
            ctx,
            world.custodian,
            slug=f"d{i}",
            name=f"Dataset {i}",
            source_agency="Agency",
            description="d",
            version=f"{i:064x}",
            custodian=world.custodian,
            permitted_purposes=["health_research"],
            variables=[variable("x", "other")],
        )
    events_before = len(audit.records(ctx.engine))
    start = threading.Barrier(DATASETS * REQUESTS_PER_DATASET)
    outcomes: list[str] = []
    lock = threading.Lock()

    def ask(dataset: str) -> None:
        start.wait()
        try:
            grants.request_grant(
                ctx,
                world.admin,
                project="busy",
                dataset=dataset,
                variables=["x"],
                expires_on=ctx.today() + timedelta(days=30),
            )
            result = "granted"
        except ControlError as error:
            result = error.rule
        with lock:
            outcomes.append(result)

    threads = [
        threading.Thread(target=ask, args=(f"d{i % DATASETS}",))
        for i in range(DATASETS * REQUESTS_PER_DATASET)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert Counter(outcomes) == {"granted": DATASETS, "duplicate_grant": 40}
    rows = grants.list_grants(ctx, world.admin, project="busy")
    assert sorted(g.dataset for g in rows) == sorted(f"d{i}" for i in range(DATASETS))
    new_events = audit.records(ctx.engine)[events_before:]
    assert len(new_events) == 50
    assert Counter((e.action, e.outcome) for e in new_events) == {
        ("request_grant", "ok"): DATASETS,
        ("request_grant", "refused"): 40,
    }
    assert sorted(e.target for e in new_events if e.outcome == "ok") == sorted(g.uuid for g in rows)
    report = audit.verify(ctx.engine)
    assert report.ok, report.summary()
    assert [e.seq for e in audit.records(ctx.engine)] == list(range(1, report.head_seq + 1))
