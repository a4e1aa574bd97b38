"""A review queue that has run for two years, for ``bench_queue.py``: people, projects and
checkers provisioned through the control plane's services, a few template requests walked to
every status through the queue's service layer, and thousands of clones of those templates.

Cloning copies every row the service wrote for a template (the request, its groups, files,
versions, votes, reviews, comments, void turns, release and release items, and its audit
events) with fresh ids and UUIDs, another project, author and checkers, and its times
shifted; each clone's files get bytes of their own (the table plus trailing blank lines
that encode the clone's number, which the checker ignores), stored in the snapshot store and
named by their new sha256 everywhere the template's hash appeared (the checker record
included). The audit events are re-chained one by one with the control plane's own hash
(``audit.event_hash``), extending the head exactly as ``audit.append`` does (the database's
triggers would refuse anything else). Walking 10,000 requests through the service would take
far longer than the benchmark may, because the control plane serialises writes.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyotp
from sqlalchemy import Engine, func, select, text

from enclave.control import audit
from enclave.control.context import Context
from enclave.control.db import WRITE_LOCK_KEY
from enclave.control.models import Person, Project
from enclave.control.service import datasets, grants, members, people, projects, tokens
from enclave.control.varspec import variable
from output_checker import check_table
from output_checker.queue import models as m
from output_checker.queue import release, service
from output_checker.queue.release import RELEASE_MANIFEST
from output_checker.queue.service._base import dumps
from output_checker.queue.service.releases import released_dir
from output_checker.queue.storage import BlobStore, sha256_of, write_atomically
from output_checker.queue.workflow import Status

ADMIN = "admin@bench.example"
CUSTODIAN = "custodian@bench.example"
DATASET = "hospital-episodes"
PASSWORD = "correct horse battery staple"
# Share of the seeded requests in each status: mostly finished, and a working queue on top
# several times deeper than a steady state would keep (about 14 new requests a day for two
# years, reviewed within the five-day service target, would leave well under 100 in review).
MIX: Mapping[Status, float] = {
    Status.RELEASED: 0.74,
    Status.REJECTED: 0.05,
    Status.WITHDRAWN: 0.09,
    Status.REVOKED: 0.005,
    Status.APPROVED: 0.005,
    Status.RETURNED: 0.02,
    Status.REVIEWED: 0.015,
    Status.PARTIALLY_REVIEWED: 0.02,
    Status.SUBMITTED: 0.035,
    Status.PENDING: 0.02,
}
OPEN = frozenset(
    {
        Status.PENDING,
        Status.SUBMITTED,
        Status.PARTIALLY_REVIEWED,
        Status.REVIEWED,
        Status.RETURNED,
        Status.APPROVED,
    }
)
TITLES = (
    "Bed use by region",
    "Length of stay by age band",
    "Readmissions within 30 days",
    "Outpatient waiting times",
    "Prescriptions by practice size",
    "Emergency admissions by month",
    "Cohort description for paper 2",
    "Sensitivity analysis tables",
)
FLUSH_EVERY = 200  # clones per transaction
PERSON_COLUMNS = ("author_id", "reviewer_id", "approved_by_id", "revoked_by_id", "voided_by_id")


class Clock:
    """A settable clock (timezone-aware UTC) for the service calls that build the seed."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass(frozen=True)
class Cast:
    """Who exists: checkers (no tie to any project) and each project's researchers."""

    checkers: tuple[str, ...]
    members: Mapping[str, tuple[str, ...]]  # project slug -> researcher emails

    @property
    def projects(self) -> tuple[str, ...]:
        return tuple(self.members)


def cast_of(n_projects: int, per_project: int, n_checkers: int) -> Cast:
    """The names of everyone ``provision`` creates."""
    return Cast(
        tuple(f"checker-{i:02d}@bench.example" for i in range(n_checkers)),
        {
            f"bench-project-{p:02d}": tuple(
                f"researcher-{p:02d}-{r}@bench.example" for r in range(per_project)
            )
            for p in range(n_projects)
        },
    )


def provision(
    ctx: Context, *, n_projects: int, per_project: int, n_checkers: int, until: date
) -> Cast:
    """Admin, custodian, dataset, checkers, and active projects with researcher members, all
    through the control plane's services (at the context's clock; valid ``until``)."""
    today = ctx.today()
    people.bootstrap_admin(ctx, email=ADMIN, name="Bench Admin", organisation="Enclave")
    people.create_person(
        ctx, ADMIN, email=CUSTODIAN, name="Cas", organisation="Agency", roles=["data_custodian"]
    )
    datasets.register_dataset(
        ctx,
        ADMIN,
        slug=DATASET,
        name="Hospital Episode Statistics",
        source_agency="Health Agency",
        description="Admitted patient care episodes",
        version="sha256:" + "ab" * 32,
        custodian=CUSTODIAN,
        permitted_purposes=["health_research"],
        variables=(variable("age_band", "quasi_identifier"), variable("episodes", "other")),
    )

    def person(email: str, role: str, name: str) -> None:
        people.create_person(
            ctx, ADMIN, email=email, name=name, organisation="Org", roles=[role], username=name
        )
        people.accredit(
            ctx,
            ADMIN,
            email,
            scheme="Safe Researcher",
            reference=f"SR-{name}",
            issued_on=today - timedelta(days=100),
            expires_on=until,
        )

    cast = cast_of(n_projects, per_project, n_checkers)
    for i, email in enumerate(cast.checkers):
        person(email, "output_checker", f"checker{i:02d}")
    for p, (slug, emails) in enumerate(cast.members.items()):
        projects.create_project(
            ctx,
            ADMIN,
            slug=slug,
            title=f"Study {p}",
            lay_summary="How hospital stays changed",
            public_benefit="Better planning of hospital beds",
            organisation="University",
            purpose="health_research",
            start_date=today - timedelta(days=30),
            end_date=until,
            legal_basis="Statistics Act s.1",
            ethics_reference=f"ETH-{p}",
            dsa_reference=f"DSA-{p}",
        )
        projects.approve_project(ctx, ADMIN, slug)
        pending = grants.request_grant(
            ctx,
            ADMIN,
            project=slug,
            dataset=DATASET,
            variables=("age_band",),
            expires_on=until,
        )
        grants.approve_grant(ctx, CUSTODIAN, pending.uuid)
        projects.activate_project(ctx, ADMIN, slug)
        for r, email in enumerate(emails):
            person(email, "researcher", f"res{p:02d}{r}")
            members.add_member(
                ctx, ADMIN, project=slug, email=email, role="researcher", expires_on=until
            )
    return cast


def enrol(ctx: Context, email: str) -> str:
    """Give ``email`` the benchmark password and a TOTP secret; returns the secret."""
    people.set_password(ctx, ADMIN, email, PASSWORD)
    return people.enrol_totp(ctx, ADMIN, email).secret


def token(ctx: Context, email: str, secret: str | None = None) -> str:
    """A fresh API bearer token of ``email``. A reviewer's (``secret``: their TOTP secret) is
    their own, on their second factor, for 12 hours (SATRE 3.2.04): the previous step's code,
    still accepted, so that a login right after can use the current one."""
    if secret is None:
        span = timedelta(days=2)
        return tokens.issue_token(ctx, ADMIN, email, label="bench", lifetime=span).token
    code = pyotp.TOTP(secret).at(ctx.now() - timedelta(seconds=30))
    span = tokens.PRIVILEGED_MAX_LIFETIME
    return tokens.issue_token(ctx, email, email, label="bench", lifetime=span, totp=code).token


# ----- outputs -------------------------------------------------------------------------------


def frame(seed: int = 7) -> pd.DataFrame:
    """200 rows, 50 per region and 100 per sex: counts by region or sex pass every rule."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "region": np.repeat(["east", "north", "south", "west"], 50),
            "sex": np.tile(["f", "m"], 100),
            "stay": rng.integers(1, 30, 200).astype(float),
        }
    )


@dataclass(frozen=True)
class Output:
    """A table as the researcher library hands it over: its bytes and the checker's record."""

    name: str
    data: bytes
    record: dict[str, Any]

    def with_suffix(self, suffix: bytes) -> Output:
        """The same table with blank lines appended (ignored when the numbers are compared),
        so its bytes, and the sha256 its record names, are its own."""
        data = self.data + suffix
        record = {**self.record, "output": {**self.record["output"]}}
        record["output"]["sha256"] = sha256_of(data)
        return Output(self.name, data, record)


def table(name: str, index: list[str], columns: list[str] | None = None) -> Output:
    """A count table made by the real checker, with its manifest record."""
    result = check_table(frame(), index, columns)
    data = result.to_frame().to_csv().encode()
    record = result.to_dict()
    record["output"] = {**record["output"], "sha256": sha256_of(data)}
    return Output(name, data, record)


def blank_lines(number: int, marker: bytes = b"\r\n") -> bytes:
    """Trailing blank lines unique to ``number`` (< 65,536): a marker, then 16 lines, each a
    bare LF or a CRLF for one bit."""
    return marker + b"".join(b"\r\n" if number >> bit & 1 else b"\n" for bit in range(16))


# ----- templates through the service layer ----------------------------------------------------


@dataclass(frozen=True)
class Template:
    """A request walked to ``status`` through the service layer."""

    status: Status
    request_id: str
    project: str
    author: str
    checkers: tuple[str, str, str]


def _review(ctx: Context, clock: Clock, rid: str, checker: str, note: bool) -> None:
    detail = service.get_request(ctx, checker, rid)
    for file in detail.files:
        if file.kind == "output" and not file.withdrawn:
            clock.advance(minutes=20)
            service.vote(ctx, checker, rid, file.id, "approve", comment="checked: fine")
    if note:
        service.comment(
            ctx,
            checker,
            rid,
            body="Both tables are counts of 50 or more.",
            group="tables",
            visibility="private",
        )
    clock.advance(minutes=5)
    service.submit_review(ctx, checker, rid)


def walk(
    ctx: Context,
    clock: Clock,
    status: Status,
    *,
    project: str,
    author: str,
    checkers: tuple[str, str, str],
    outputs: Iterable[Output],
    title: str,
    supporting: bool,
) -> Template:
    """Create a request and bring it to ``status`` through the service layer, as people would
    (hours pass between steps); returns the template."""
    rid = service.create_request(ctx, author, project=project, title=title).id
    for output in outputs:
        clock.advance(minutes=10)
        service.add_file(
            ctx,
            author,
            rid,
            name=output.name,
            data=output.data,
            group="tables",
            record=output.record,
        )
    if supporting:
        service.add_file(
            ctx,
            author,
            rid,
            name="method-notes.txt",
            data=b"Counts from the episodes table.\n",
            kind="supporting",
            group="tables",
        )
    service.set_group(
        ctx,
        author,
        rid,
        "tables",
        context="Counts by region and sex",
        controls="Every cell holds at least 10 people",
    )
    a, b, c = checkers
    done = Template(status, rid, project, author, checkers)
    clock.advance(hours=2)
    if status is Status.PENDING:
        return done
    if status is Status.WITHDRAWN:
        service.withdraw(ctx, author, rid)
        return done
    service.submit(ctx, author, rid)
    clock.advance(hours=20)
    if status is Status.SUBMITTED:
        return done
    if status is Status.RETURNED:
        service.return_request(ctx, a, rid, comment="Please label the columns")
        return done
    _review(ctx, clock, rid, a, note=supporting)
    clock.advance(hours=26)
    if status is Status.PARTIALLY_REVIEWED:
        return done
    _review(ctx, clock, rid, b, note=False)
    clock.advance(hours=3)
    if status is Status.REVIEWED:
        return done
    if status is Status.REJECTED:
        service.reject(ctx, a, rid, reason="Not a safe output")
        return done
    service.approve(ctx, c, rid, comment="Two approvals; releasing")
    clock.advance(minutes=2)
    if status is Status.APPROVED:
        return done
    outcome = release.release_request(ctx, rid)
    assert outcome.status == Status.RELEASED.value, outcome
    if status is Status.RELEASED:
        return done
    clock.advance(days=3)
    service.revoke_release(ctx, a, rid, reason="Breach: the wrong file was released")
    return done


def build_templates(ctx: Context, clock: Clock, cast: Cast, variants: int = 2) -> list[Template]:
    """``variants`` templates per status: one output; two outputs, a supporting file and a
    private checker comment; ..."""
    made: list[Template] = []
    serial = 0
    one = [table("by-region.csv", ["region"])]
    two = [*one, table("by-region-sex.csv", ["region"], ["sex"])]
    for status in MIX:
        for variant in range(variants):
            serial += 1
            outputs = [o.with_suffix(b"\n" * serial) for o in (two if variant % 2 else one)]
            project = cast.projects[serial % len(cast.projects)]
            author = cast.members[project][0]
            a, b, c = cast.checkers[:3]
            made.append(
                walk(
                    ctx,
                    clock,
                    status,
                    project=project,
                    author=author,
                    checkers=(a, b, c),
                    outputs=outputs,
                    title=TITLES[serial % len(TITLES)],
                    supporting=variant % 2 == 1,
                )
            )
            clock.advance(hours=1)
    return made


# ----- clones ---------------------------------------------------------------------------------


@dataclass
class _Rows:
    """Every row the service wrote for one template request, keyed by table name."""

    tables: dict[str, list[dict[str, Any]]]
    events: list[dict[str, Any]]
    blobs: dict[str, bytes]  # sha256 -> bytes of the template's snapshots
    released: bool  # whether the template's files are in the released area


QUEUE_ORDER = (
    "queue_requests",
    "queue_groups",
    "queue_files",
    "queue_file_versions",
    "queue_votes",
    "queue_reviews",
    "queue_comments",
    "queue_void_turns",
    "queue_releases",
    "queue_release_items",
)


def _load(engine: Engine, data_dir: Path, template: Template) -> _Rows:
    t = m.QueueBase.metadata.tables
    with engine.connect() as c:
        request = dict(
            c.execute(
                select(t["queue_requests"]).where(t["queue_requests"].c.uuid == template.request_id)
            )
            .mappings()
            .one()
        )
        rid = request["id"]

        def rows(name: str, column: str, values: Iterable[int]) -> list[dict[str, Any]]:
            table_ = t[name]
            found = c.execute(
                select(table_)
                .where(table_.c[column].in_(list(values)))
                .order_by(*table_.primary_key)
            )
            return [dict(r) for r in found.mappings()]

        files = rows("queue_files", "request_id", [rid])
        file_ids = [f["id"] for f in files]
        releases = rows("queue_releases", "request_id", [rid])
        tables = {
            "queue_requests": [request],
            "queue_groups": rows("queue_groups", "request_id", [rid]),
            "queue_files": files,
            "queue_file_versions": rows("queue_file_versions", "file_id", file_ids),
            "queue_votes": rows("queue_votes", "file_id", file_ids),
            "queue_reviews": rows("queue_reviews", "request_id", [rid]),
            "queue_comments": rows("queue_comments", "request_id", [rid]),
            "queue_void_turns": rows("queue_void_turns", "request_id", [rid]),
            "queue_releases": releases,
            "queue_release_items": rows(
                "queue_release_items", "release_id", [r["id"] for r in releases]
            ),
        }
        events = [
            dict(r)
            for r in c.execute(
                text("SELECT * FROM audit_events WHERE target = :t ORDER BY seq"),
                {"t": template.request_id},
            ).mappings()
        ]
    store = BlobStore.for_data_dir(data_dir)
    shas = {f["sha256"] for f in files} | {v["sha256"] for v in tables["queue_file_versions"]}
    blobs = {sha: store.read(sha) for sha in shas}
    project_slug = template.project
    released = released_dir(data_dir, project_slug, template.request_id).is_dir()
    return _Rows(tables, events, blobs, released)


def _map_leaves(value: Any, strings: Mapping[str, str]) -> Any:
    """``value`` (parsed JSON) with every string leaf found in ``strings`` replaced."""
    if isinstance(value, str):
        return strings.get(value, value)
    if isinstance(value, list):
        return [_map_leaves(v, strings) for v in value]
    if isinstance(value, dict):
        return {k: _map_leaves(v, strings) for k, v in value.items()}
    return value


@dataclass
class Cloner:
    """Appends clones of templates: ids continue each table's sequence; the audit chain is
    extended from its head."""

    engine: Engine
    data_dir: Path
    people: dict[str, int] = field(default_factory=dict)  # email -> person id
    project_ids: dict[str, int] = field(default_factory=dict)
    next_id: dict[str, int] = field(default_factory=dict)
    pending: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    blobs: dict[str, bytes] = field(default_factory=dict)
    released: list[tuple[str, str, dict[str, bytes], dict[str, Any]]] = field(default_factory=list)
    serial: int = 0

    def __post_init__(self) -> None:
        with self.engine.connect() as c:
            self.people = dict(c.execute(select(Person.email, Person.id)).all())
            self.project_ids = dict(c.execute(select(Project.slug, Project.id)).all())
            for name in QUEUE_ORDER:
                table_ = m.QueueBase.metadata.tables[name]
                if "id" in table_.c:
                    self.next_id[name] = int(c.scalar(select(func.max(table_.c.id))) or 0) + 1
        self.pending = {name: [] for name in QUEUE_ORDER}

    def _id(self, table_: str) -> int:
        value = self.next_id[table_]
        self.next_id[table_] = value + 1
        return value

    def clone(
        self,
        rows: _Rows,
        template: Template,
        *,
        project: str,
        author: str,
        checkers: tuple[str, str, str],
        shift: timedelta,
        title: str,
    ) -> str:
        """Queue one clone for ``flush``; returns its request id."""
        self.serial += 1
        persons = {template.author: author, **dict(zip(template.checkers, checkers, strict=True))}
        person_ids = {self.people[old]: self.people[new] for old, new in persons.items()}
        strings: dict[str, str] = {**persons, template.project: project}
        old_title = rows.tables["queue_requests"][0]["title"]
        strings[old_title] = title
        new_bytes: dict[str, bytes] = {}
        for sha, data in rows.blobs.items():
            fresh = data + blank_lines(self.serial)
            new_bytes[sha] = fresh
            strings[sha] = sha256_of(fresh)
        for name in ("queue_requests", "queue_files", "queue_comments", "queue_releases"):
            for row in rows.tables[name]:
                strings[row["uuid"]] = str(uuid.uuid4())
        sizes = {strings[sha]: len(data) for sha, data in new_bytes.items()}
        ids: dict[str, dict[int, int]] = {}
        for name in QUEUE_ORDER:
            mapped = ids.setdefault(name, {})
            for row in rows.tables[name]:
                new = {}
                for column, value in row.items():
                    if isinstance(value, datetime):
                        value = value + shift
                    elif isinstance(value, str) and column != "record":
                        value = strings.get(value, value)
                    new[column] = value
                if "id" in row:
                    new["id"] = mapped[row["id"]] = self._id(name)
                for column, target in (
                    ("request_id", "queue_requests"),
                    ("group_id", "queue_groups"),
                    ("file_id", "queue_files"),
                    ("release_id", "queue_releases"),
                ):
                    if column in new and new[column] is not None:
                        new[column] = ids[target][row[column]]
                for column in PERSON_COLUMNS:
                    if new.get(column) is not None:
                        new[column] = person_ids.get(row[column], row[column])
                if name == "queue_requests":
                    new["project_id"] = self.project_ids[project]
                if row.get("record"):
                    new["record"] = dumps(_map_leaves(json.loads(row["record"]), strings))
                if "size" in new:
                    new["size"] = sizes[new["sha256"]]
                self.pending[name].append(new)
        for event in rows.events:
            at = datetime.strptime(event["at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
            self.events.append(
                {
                    "at": audit.format_time(at + shift),
                    "actor": strings.get(event["actor"], event["actor"]),
                    "action": event["action"],
                    "outcome": event["outcome"],
                    "target": strings.get(event["target"], event["target"]),
                    "project": strings.get(event["project"], event["project"]),
                    "detail": audit.canonical_json(
                        _map_leaves(json.loads(event["detail"]), strings)
                    ),
                }
            )
        for data in new_bytes.values():
            self.blobs[sha256_of(data)] = data
        request = self.pending["queue_requests"][-1]
        if rows.released:
            self._release_copy(request, project, new_bytes, strings)
        return str(request["uuid"])

    def _release_copy(
        self,
        request: dict[str, Any],
        project: str,
        new_bytes: Mapping[str, bytes],
        strings: Mapping[str, str],
    ) -> None:
        """The released area of a released clone, as the release worker writes it."""
        release_ = self.pending["queue_releases"][-1]
        items = [
            i for i in self.pending["queue_release_items"] if i["release_id"] == release_["id"]
        ]
        files = {
            f["id"]: f for f in self.pending["queue_files"] if f["request_id"] == request["id"]
        }
        by_new_sha = {strings[old]: data for old, data in new_bytes.items()}
        content = {files[i["file_id"]]["name"]: by_new_sha[i["sha256"]] for i in items}
        approver = next(e for e, i in self.people.items() if i == release_["approved_by_id"])
        manifest = {
            "request": request["uuid"],
            "release": release_["uuid"],
            "project": project,
            "approved_by": approver,
            "completed_at": release_["completed_at"].isoformat(),
            "files": [
                {
                    "name": files[i["file_id"]]["name"],
                    "sha256": i["sha256"],
                    "size": files[i["file_id"]]["size"],
                }
                for i in items
            ],
        }
        self.released.append((project, request["uuid"], content, manifest))

    def flush(self) -> None:
        """Write every queued clone: rows, audit events (chained), snapshots, released files,
        the projects' release counters; then move the id sequences past the new rows."""
        raw = self.engine.raw_connection()
        try:
            driver = raw.driver_connection
            assert driver is not None
            with driver.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK_KEY,))
                for name in QUEUE_ORDER:
                    batch = self.pending[name]
                    if not batch:
                        continue
                    columns = list(batch[0])
                    sql = (
                        f"INSERT INTO {name} ({', '.join(columns)}) "
                        f"VALUES ({', '.join(['%s'] * len(columns))})"
                    )
                    cur.executemany(sql, [tuple(r[c] for c in columns) for r in batch])
                self._chain(cur)
                released_counts: dict[str, int] = {}
                for project, _, _, _ in self.released:
                    released_counts[project] = released_counts.get(project, 0) + 1
                cur.executemany(
                    "UPDATE projects SET outputs_released = outputs_released + %s WHERE slug = %s",
                    [(n, slug) for slug, n in released_counts.items()],
                )
                for name in QUEUE_ORDER:
                    if "id" in m.QueueBase.metadata.tables[name].c:
                        cur.execute(
                            f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                            f"(SELECT COALESCE(MAX(id), 1) FROM {name}))"
                        )
            self._files()
            raw.commit()
        finally:
            raw.close()
        self.pending = {name: [] for name in QUEUE_ORDER}
        self.events, self.blobs, self.released = [], {}, []

    def _chain(self, cur: Any) -> None:
        cur.execute("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE")
        seq, previous = cur.fetchone()
        insert = (
            "INSERT INTO audit_events (seq, uuid, at, actor, action, outcome, target, project, "
            "detail, prev_hash, hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        )
        advance = "UPDATE audit_head SET seq = %s, hash = %s WHERE id = 1"
        with cur.connection.pipeline():
            for event in self.events:
                seq += 1
                fields = {**event, "seq": seq, "uuid": str(uuid.uuid4()), "prev_hash": previous}
                digest = audit.event_hash(fields)
                cur.execute(insert, [*(fields[k] for k in audit.HASHED_FIELDS), digest])
                cur.execute(advance, (seq, digest))
                previous = digest

    def _files(self) -> None:
        store = BlobStore.for_data_dir(self.data_dir)
        with ThreadPoolExecutor(8) as pool:  # fsync-bound: threads overlap the waits
            list(pool.map(store.put, self.blobs.values()))
            list(pool.map(self._write_release, self.released))

    def _write_release(self, item: tuple[str, str, dict[str, bytes], dict[str, Any]]) -> None:
        project, request_id, content, manifest = item
        where = released_dir(self.data_dir, project, request_id)
        for name, data in content.items():
            write_atomically(where / name, data, mode=0o444)
        body = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
        write_atomically(where / RELEASE_MANIFEST, body, mode=0o444)


def plan(total: int, templates: int) -> dict[Status, int]:
    """How many clones each status needs so that ``total`` requests follow MIX."""
    per_status = templates // len(MIX)
    counts = {s: round(total * share) for s, share in MIX.items()}
    counts[Status.RELEASED] += total - sum(counts.values())
    return {s: n - per_status for s, n in counts.items()}


def seed(
    ctx: Context,
    templates: list[Template],
    cast: Cast,
    *,
    total: int,
    start: datetime,
    now: datetime,
    rng: random.Random,
    progress: Callable[[str], None] = print,
) -> None:
    """Clone the templates until ``total`` requests exist in MIX's proportions: finished
    requests spread over [start, now - 30 days], open ones over the last 30 days."""
    cloner = Cloner(ctx.engine, ctx.data_dir)
    rows = {t.request_id: _load(ctx.engine, ctx.data_dir, t) for t in templates}
    by_status: dict[Status, list[Template]] = {}
    for t in templates:
        by_status.setdefault(t.status, []).append(t)
    jobs: list[tuple[timedelta, Template]] = []
    recent = now - timedelta(days=30)
    for status, n in plan(total, len(templates)).items():
        for i in range(n):
            template = by_status[status][i % len(by_status[status])]
            first = rows[template.request_id].tables["queue_requests"][0]["created_at"]
            lo, hi = (recent, now - timedelta(days=5)) if status in OPEN else (start, recent)
            moment = lo + (hi - lo) * rng.random()
            jobs.append((moment - first, template))
    jobs.sort(key=lambda job: job[0])  # oldest first, so the audit chain runs forward in time
    for n, (shift, template) in enumerate(jobs, 1):
        project = rng.choice(cast.projects)
        cloner.clone(
            rows[template.request_id],
            template,
            project=project,
            author=rng.choice(cast.members[project]),
            checkers=tuple(rng.sample(cast.checkers, 3)),  # type: ignore[arg-type]
            shift=shift,
            title=rng.choice(TITLES),
        )
        # Small transactions: the audit head is updated once per event, and PostgreSQL can
        # only prune the head row's old versions once the transaction that made them ends.
        if n % FLUSH_EVERY == 0 or n == len(jobs):
            cloner.flush()
            if n % 2000 < FLUSH_EVERY or n == len(jobs):
                progress(f"  cloned {n:,} of {len(jobs):,}")
