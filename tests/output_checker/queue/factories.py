"""Factories for the queue tests: a world of people and a project built through the control
plane's services, outputs made by the real checker, and requests brought to any status
through the queue's service layer only (never by writing rows)."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from enclave.control.context import Context
from enclave.control.service import members, people
from output_checker import check_table
from output_checker.parameters import Parameters
from output_checker.queue import release, service
from output_checker.queue.recipes import derive, parse_recipe, published
from output_checker.queue.workflow import Status
from tests.enclave.control.factories import World, make_project, make_world

PROJECT = "study"
DATASET = "hospital-episodes"


@dataclass(frozen=True)
class QueueWorld:
    """People in every relation to the project ``study``.

    ``author`` and ``collaborator`` are researcher members; ``member_checker`` is an output
    checker who is also a researcher member; ``former_member`` an output checker whose
    researcher membership ended; ``assigned_checker`` a checker holding the project's
    output-checker membership (a tie all the same: barred from reviewing);
    ``checker_a/b/c`` have no tie at all.
    """

    base: World
    data_dir: Path
    version: str
    project: str = PROJECT
    author: str = "researcher@example.org"
    collaborator: str = "colleague@example.org"
    checker_a: str = "checker@example.org"
    checker_b: str = "checker-b@example.org"
    checker_c: str = "checker-c@example.org"
    member_checker: str = "dual@example.org"
    former_member: str = "former@example.org"
    assigned_checker: str = "assigned@example.org"
    outsider: str = "outsider@example.org"
    admin: str = "admin@example.org"
    custodian: str = "custodian@example.org"
    nobody: str = "nobody@example.org"

    def by_role(self, role: str) -> str:
        return str(getattr(self, role))


def _person(ctx: Context, world: World, email: str, roles: list[str], username: str) -> None:
    people.create_person(
        ctx,
        world.admin,
        email=email,
        name=username,
        organisation="Org",
        roles=roles,
        username=username,
    )
    today = ctx.today()
    people.accredit(
        ctx,
        world.admin,
        email,
        scheme="Safe Researcher",
        reference=f"SR-{username}",
        issued_on=today - timedelta(days=100),
        expires_on=today + timedelta(days=400),
    )


def dataset_frame() -> pd.DataFrame:
    """200 rows: 50 per region, so a count by region passes every rule; the ``age`` band
    "90+" holds 3 rows, so a count by region and age fails the threshold."""
    rng = np.random.default_rng(7)
    region = np.repeat(["east", "north", "south", "west"], 50)
    sex = np.tile(["f", "m"], 100)
    age = np.array(["18-64"] * 197 + ["90+"] * 3)
    return pd.DataFrame(
        {
            "region": region,
            "sex": sex,
            "age": age,
            "year": rng.integers(2018, 2025, 200),
            "stay": rng.integers(1, 30, 200).astype(float),
        }
    )


def make_queue_world(ctx: Context) -> QueueWorld:
    base = make_world(ctx)
    view = make_project(ctx, base, PROJECT, "active")
    end = view.end_date
    _person(ctx, base, "colleague@example.org", ["researcher"], "colleague")
    _person(ctx, base, "checker-b@example.org", ["output_checker"], "checker-b")
    _person(ctx, base, "checker-c@example.org", ["output_checker"], "checker-c")
    _person(ctx, base, "dual@example.org", ["researcher", "output_checker"], "dual")
    _person(ctx, base, "former@example.org", ["researcher", "output_checker"], "former")
    _person(ctx, base, "assigned@example.org", ["output_checker"], "assigned")
    _person(ctx, base, "outsider@example.org", ["researcher"], "outsider")
    for email in ("colleague@example.org", "dual@example.org", "former@example.org"):
        members.add_member(
            ctx, base.admin, project=PROJECT, email=email, role="researcher", expires_on=end
        )
    members.add_member(
        ctx,
        base.admin,
        project=PROJECT,
        email="assigned@example.org",
        role="output_checker",
        expires_on=end,
    )
    members.remove_member(
        ctx,
        base.admin,
        project=PROJECT,
        email="former@example.org",
        role="researcher",
        reason="left the team",
    )
    data = ctx.data_dir / "projects" / PROJECT / "data"
    data.mkdir(parents=True, exist_ok=True)
    path = data / f"{DATASET}.parquet"
    dataset_frame().to_parquet(path)
    version = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    return QueueWorld(base=base, data_dir=ctx.data_dir, version=version)


@dataclass(frozen=True)
class Output:
    """An output as the researcher library would hand it over."""

    name: str
    data: bytes
    record: dict[str, Any] | None
    recipe: dict[str, Any] | None

    def files_entry(self, group: str = "tables", kind: str = "output") -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": kind,
            "group": group,
            "sha256": hashlib.sha256(self.data).hexdigest(),
            "record": self.record,
            "recipe": self.recipe,
        }


def table_output(
    qw: QueueWorld,
    name: str = "by-region.csv",
    *,
    index: tuple[str, ...] = ("region",),
    columns: tuple[str, ...] = (),
    with_recipe: bool = True,
) -> Output:
    """A count table made by the real checker from the project's data, with its record and
    (unless ``with_recipe`` is false) the recipe that re-derives it."""
    frame = dataset_frame()
    result = check_table(frame, list(index), list(columns) or None)
    recipe = {
        "dataset": DATASET,
        "version": qw.version,
        "filters": [],
        "grouping": {"index": list(index), "columns": list(columns)},
        "values": None,
        "aggregation": "count",
        "entity": None,
        "weights": None,
        "margins": False,
    }
    return Output(
        name,
        result.to_frame().to_csv().encode(),
        result.to_dict(),
        recipe if with_recipe else None,
    )


def recipe_output(
    qw: QueueWorld,
    name: str,
    *,
    filters: tuple[dict[str, Any], ...] = (),
    index: tuple[str, ...] = ("region",),
    columns: tuple[str, ...] = (),
    values: str | None = None,
    aggregation: str = "count",
    margins: bool = False,
    protect: bool = False,
    dataset: tuple[str, str] | None = None,
    weights: str | None = None,
    round_to: int | None = None,
) -> Output:
    """A table output made from the project's data through its recipe (filters, a sum or a
    mean, secondary suppression, rounding), exactly as the server re-makes it. ``dataset`` is
    another dataset of the project's and its version. A rounded table has no checker record
    (its numbers are no longer the record's cells)."""
    name_of_data, version = dataset or (DATASET, qw.version)
    recipe = {
        "dataset": name_of_data,
        "version": version,
        "filters": list(filters),
        "grouping": {"index": list(index), "columns": list(columns)},
        "values": values,
        "aggregation": aggregation,
        "entity": None,
        "weights": weights,
        "margins": margins,
        "protect": protect,
        "round": round_to,
    }
    data_dir = qw.data_dir / "projects" / qw.project / "data"
    parsed = parse_recipe(recipe)
    result = derive(parsed, data_dir, Parameters())
    table = published(parsed, result).to_csv().encode()
    return Output(name, table, None if round_to else result.to_dict(), recipe)


def passing_output(qw: QueueWorld, name: str = "by-region.csv") -> Output:
    return table_output(qw, name)


_SERIAL = itertools.count(1)


def distinct(output: Output) -> Output:
    """The same table with trailing blank lines (ignored when numbers are compared), so its
    bytes differ from every other request's: released bytes may not be released again."""
    data = output.data + b"\n" * next(_SERIAL)
    record = None
    if output.record is not None:
        record = {**output.record, "output": {**output.record["output"]}}
        record["output"]["sha256"] = hashlib.sha256(data).hexdigest()
    return Output(output.name, data, record, output.recipe)


def failing_output(
    qw: QueueWorld, name: str = "by-age.csv", *, index: tuple[str, ...] = ("region", "age")
) -> Output:
    """A count that fails the threshold: its 90+ band holds 3 people (all in the west)."""
    return table_output(qw, name, index=index)


def failing_beside_passing(qw: QueueWorld) -> Output:
    """A failing count by age alone, for a request that also holds the count by region: a
    count by region and age would difference with it (west: 50 against 47 aged 18-64)."""
    return failing_output(qw, index=("age",))


def add_output(
    ctx: Context, qw: QueueWorld, request_id: str, output: Output, group: str = "tables"
) -> str:
    view = service.add_file(
        ctx,
        qw.author,
        request_id,
        name=output.name,
        data=output.data,
        group=group,
        record=output.record,
        recipe=output.recipe,
    )
    return view.id


def approve_all(ctx: Context, qw: QueueWorld, request_id: str, checker: str) -> None:
    """``checker`` approves every output (with a comment, in case one is needed) and submits."""
    detail = service.get_request(ctx, checker, request_id)
    for file in detail.files:
        if file.kind == "output" and not file.withdrawn:
            service.vote(ctx, checker, request_id, file.id, "approve", comment="checked: fine")
    service.submit_review(ctx, checker, request_id)


def make_request(
    ctx: Context,
    qw: QueueWorld,
    status: Status = Status.PENDING,
    *,
    outputs: tuple[Output, ...] | None = None,
    title: str = "Bed use",
) -> str:
    """A request brought to ``status`` through the service layer; returns its id.

    Defaults: one passing output (re-derivable), reviewed by checkers A and B who both
    approve; RETURNED is reached by an early return; REVOKED from RELEASED.
    """
    made = service.create_request(ctx, qw.author, project=qw.project, title=title)
    rid = made.id
    for output in outputs if outputs is not None else (passing_output(qw),):
        add_output(ctx, qw, rid, distinct(output))
    service.set_group(
        ctx, qw.author, rid, "tables", context="Counts by region", controls="Checked by the tool"
    )
    if status is Status.PENDING:
        return rid
    if status is Status.WITHDRAWN:
        service.withdraw(ctx, qw.author, rid)
        return rid
    service.submit(ctx, qw.author, rid)
    if status is Status.SUBMITTED:
        return rid
    if status is Status.RETURNED:
        service.return_request(ctx, qw.checker_a, rid, comment="please fix the labels")
        return rid
    approve_all(ctx, qw, rid, qw.checker_a)
    if status is Status.PARTIALLY_REVIEWED:
        return rid
    approve_all(ctx, qw, rid, qw.checker_b)
    if status is Status.REVIEWED:
        return rid
    if status is Status.REJECTED:
        service.reject(ctx, qw.checker_a, rid, reason="not a safe output")
        return rid
    service.approve(ctx, qw.checker_c, rid, comment="two approvals; releasing")
    if status is Status.APPROVED:
        return rid
    outcome = release.release_request(ctx, rid)
    assert outcome.status == Status.RELEASED.value, outcome
    if status is Status.RELEASED:
        return rid
    assert status is Status.REVOKED
    service.revoke_release(ctx, qw.checker_a, rid, reason="breach: wrong file released")
    return rid


def write_bundle(
    qw: QueueWorld,
    owner: str,
    name: str,
    outputs: tuple[Output, ...],
    *,
    manifest: dict[str, Any] | None = None,
    finalise: bool = True,
) -> Path:
    """A bundle in the outbox as the researcher library writes it; returns its directory."""
    bundle = qw.data_dir / "projects" / qw.project / "outbox" / owner / name
    bundle.mkdir(parents=True, exist_ok=True)
    for output in outputs:
        (bundle / output.name).write_bytes(output.data)
    document = manifest or {
        "bundle_version": 1,
        "title": f"Bundle {name}",
        "groups": {"tables": {"context": "Counts", "controls": "Threshold 10"}},
        "files": [o.files_entry() for o in outputs],
    }
    (bundle / "manifest.json").write_text(json.dumps(document))
    if finalise:
        (bundle / "finalised").write_text("")
    return bundle
