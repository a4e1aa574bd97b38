"""Usage data for admins (SATRE 2.2.13-15) and for charging (4.4.02): per project and per
person, the sessions, session-hours and datasets mounted over a date range, and the bytes on
disk now.

Sessions come from the audit log, which already records each allowed ``start_session`` and
each ``session_stop``; nothing else keeps a second copy. ``session_use`` pairs them (pure). A
session with no stop counts until now, or until the last day its start decision held
(``valid_until``), whichever is earlier; a start while one is open ends the open one there.
Storage is measured under ``<data_dir>/projects/<slug>`` with ``os.scandir`` (symlinks are
not followed): the extract (``data``) per project, ``home/<user>`` and ``outbox/<user>`` per
person. The queue's snapshots are content-addressed and shared between requests, so only
their total is reported. Viewing the report is an admin's action, audited (``view_usage``).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from enclave.control.audit import format_time
from enclave.control.context import Context
from enclave.control.errors import InvalidInput
from enclave.control.models import AuditEvent, Person, Project
from enclave.control.rules import Action
from enclave.control.service._base import authorize, parse_date, perform, record
from enclave.control.workspace import EXTRACT_DIR, workspace_dir

PERSONAL_DIRS = ("home", "outbox")  # projects/<slug>/<zone>/<username>
SNAPSHOTS = ("queue", "blobs")  # <data_dir>/queue/blobs: the review queue's store
MB = 1_000_000


@dataclass(frozen=True)
class SessionEvent:
    """A ``start_session`` (allowed) or ``session_stop`` event of the audit log."""

    at: datetime
    kind: str  # "start" or "stop"
    email: str
    project: str
    datasets: tuple[str, ...] = ()
    valid_until: date | None = None
    cpu_seconds: float | None = None


@dataclass(frozen=True)
class SessionUse:
    """One person's sessions on one project within the range."""

    project: str
    email: str
    sessions: int = 0
    hours: float = 0.0
    datasets: tuple[str, ...] = ()
    cpu_seconds: float | None = None


@dataclass(frozen=True)
class UsageRow:
    """A line of the report: a project, a person, or a person on a project (charging)."""

    project: str  # "" in a person's total
    email: str  # "" in a project's total
    sessions: int
    hours: float
    storage_bytes: int
    datasets: tuple[str, ...]
    cpu_seconds: float | None = None

    @property
    def storage_mb(self) -> float:
        return round(self.storage_bytes / MB, 3)


@dataclass(frozen=True)
class UsageReport:
    """Usage from ``start`` to ``end`` (both days included); storage as measured now."""

    start: date
    end: date
    generated_at: datetime
    projects: tuple[UsageRow, ...]
    people: tuple[UsageRow, ...]
    charges: tuple[UsageRow, ...]  # per project and person
    snapshot_bytes: int = 0
    extract_bytes: dict[str, int] = field(default_factory=dict)


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time(0), UTC)


def _pairs(
    events: Iterable[SessionEvent], now: datetime
) -> Iterator[tuple[SessionEvent, datetime]]:
    """Each start with the moment its session ended (events of one person and project, in
    order of time)."""
    open_: SessionEvent | None = None
    for event in events:
        if open_ is not None:
            yield open_, event.at  # a stop ends it; so does a new start (no stop recorded)
            open_ = None
        if event.kind == "start":
            open_ = event
    if open_ is not None:
        # the decision held through its last day
        lapse = _start_of(open_.valid_until + timedelta(days=1)) if open_.valid_until else now
        yield open_, max(open_.at, min(now, lapse))


def session_use(
    events: Iterable[SessionEvent], start: datetime, end: datetime, now: datetime
) -> list[SessionUse]:
    """Sessions, hours (clipped to [``start``, ``end``)), datasets mounted and CPU seconds
    (of the stops within the range) per (project, person), sorted. Pure."""
    grouped: dict[tuple[str, str], list[SessionEvent]] = defaultdict(list)
    for event in sorted(events, key=lambda e: e.at):
        grouped[(event.project, event.email)].append(event)
    uses = []
    for (project, email), mine in sorted(grouped.items()):
        count, seconds, datasets = 0, 0.0, set[str]()
        for began, ended in _pairs(mine, now):
            overlap = (min(ended, end) - max(began.at, start)).total_seconds()
            if overlap > 0 or start <= began.at < end:
                count, seconds = count + 1, seconds + max(0.0, overlap)
                datasets.update(began.datasets)
        cpu = [e.cpu_seconds for e in mine if e.cpu_seconds is not None and start <= e.at < end]
        if count or cpu:
            uses.append(
                SessionUse(
                    project,
                    email,
                    count,
                    round(seconds / 3600, 4),
                    tuple(sorted(datasets)),
                    round(sum(cpu), 3) if cpu else None,
                )
            )
    return uses


def tree_bytes(path: Path) -> int:
    """Bytes of the regular files under ``path`` (0 if it does not exist); symlinks are
    neither followed nor counted, and unreadable directories are skipped."""
    total, pending = 0, [path]
    while pending:
        try:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
    return total


@dataclass(frozen=True)
class Storage:
    """Bytes on disk now: per project (all of it, and its extract) and per (project, user)."""

    project_bytes: dict[str, int]
    extract_bytes: dict[str, int]
    personal_bytes: dict[tuple[str, str], int]  # (project, username)
    snapshot_bytes: int


def measure_storage(data_dir: Path, projects: Iterable[str]) -> Storage:
    """Walk each project's workspace once per zone (no shelling out to du)."""
    whole: dict[str, int] = {}
    extract: dict[str, int] = {}
    personal: dict[tuple[str, str], int] = {}
    for slug in projects:
        root = workspace_dir(data_dir, slug)
        whole[slug], extract[slug] = tree_bytes(root), tree_bytes(root / EXTRACT_DIR)
        for zone in PERSONAL_DIRS:
            for user in _subdirs(root / zone):
                key = (slug, user.name)
                personal[key] = personal.get(key, 0) + tree_bytes(user)
    return Storage(whole, extract, personal, tree_bytes(data_dir.joinpath(*SNAPSHOTS)))


def _subdirs(path: Path) -> list[Path]:
    try:
        with os.scandir(path) as entries:
            return [Path(e.path) for e in entries if e.is_dir(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []


def _range(ctx: Context, start: date | str | None, end: date | str | None) -> tuple[date, date]:
    """The days asked for; by default the current month up to today."""
    today = ctx.today()
    first = parse_date(start, "from") if start else today.replace(day=1)
    last = parse_date(end, "to") if end else today
    if last < first:
        raise InvalidInput(
            f"the range ends on {last}, before it starts on {first}", rule="invalid_date"
        )
    return first, last


@dataclass(frozen=True)
class _Facts:
    events: list[SessionEvent]
    projects: list[str]
    usernames: dict[str, str]  # username -> email


def _events(session: Session, before: datetime) -> list[SessionEvent]:
    query = (
        select(
            AuditEvent.at,
            AuditEvent.action,
            AuditEvent.actor,
            AuditEvent.project,
            AuditEvent.detail,
        )
        .where(
            AuditEvent.action.in_((Action.START_SESSION.value, "session_stop")),
            AuditEvent.outcome.in_(("allowed", "ok")),
            AuditEvent.at < format_time(before),  # ISO UTC strings sort like their times
        )
        .order_by(AuditEvent.seq)
    )
    found = []
    for at, action, actor, project, text in session.execute(query):
        detail = json.loads(text)
        until = detail.get("valid_until")
        found.append(
            SessionEvent(
                at=datetime.fromisoformat(at),
                kind="start" if action == Action.START_SESSION.value else "stop",
                email=actor,
                project=project or "",
                datasets=tuple(detail.get("datasets") or ()),
                valid_until=date.fromisoformat(until) if until else None,
                cpu_seconds=detail.get("cpu_seconds"),
            )
        )
    return found


def usage_report(
    ctx: Context, actor: str, *, start: date | str | None = None, end: date | str | None = None
) -> UsageReport:
    """The usage report from ``start`` to ``end`` (days, both included; by default this
    month). Admins only (``view_usage``, audited with the range); the disk is walked after
    the transaction, so a large workspace holds no lock."""
    first, last = _range(ctx, start, end)
    since, until = _start_of(first), _start_of(last + timedelta(days=1))

    def work(session: Session, me: Person) -> _Facts:
        authorize(me, Action.VIEW_USAGE)
        facts = _Facts(
            _events(session, until),
            list(session.scalars(select(Project.slug).order_by(Project.slug))),
            {name: email for name, email in session.execute(select(Person.username, Person.email))},
        )
        record(session, ctx, me, Action.VIEW_USAGE, start=first.isoformat(), end=last.isoformat())
        return facts

    facts = perform(ctx, actor, Action.VIEW_USAGE, work)
    now = ctx.now()
    uses = session_use(facts.events, since, until, now)
    storage = measure_storage(ctx.data_dir, facts.projects)
    charges = _charges(uses, storage, facts.usernames)
    return UsageReport(
        start=first,
        end=last,
        generated_at=now,
        projects=tuple(_projects(charges, storage, facts.projects)),
        people=tuple(_people(charges)),
        charges=tuple(charges),
        snapshot_bytes=storage.snapshot_bytes,
        extract_bytes=storage.extract_bytes,
    )


def _charges(uses: list[SessionUse], storage: Storage, usernames: dict[str, str]) -> list[UsageRow]:
    """A row per (project, person) with sessions or files of their own."""
    rows = {(u.project, u.email): u for u in uses}
    disk = {
        (slug, usernames.get(user, user)): size
        for (slug, user), size in storage.personal_bytes.items()
    }
    charges = []
    for key in sorted(rows.keys() | disk.keys()):
        use = rows.get(key) or SessionUse(*key)
        charges.append(
            UsageRow(*key, use.sessions, use.hours, disk.get(key, 0), use.datasets, use.cpu_seconds)
        )
    return charges


def _total(project: str, email: str, rows: list[UsageRow], storage_bytes: int) -> UsageRow:
    cpu = [r.cpu_seconds for r in rows if r.cpu_seconds is not None]
    return UsageRow(
        project,
        email,
        sum(r.sessions for r in rows),
        round(sum(r.hours for r in rows), 4),
        storage_bytes,
        tuple(sorted({d for r in rows for d in r.datasets})),
        round(sum(cpu), 3) if cpu else None,
    )


def _projects(charges: list[UsageRow], storage: Storage, slugs: list[str]) -> Iterator[UsageRow]:
    """Every project (storage: its whole workspace, extract included)."""
    for slug in sorted(set(slugs) | {r.project for r in charges}):
        mine = [r for r in charges if r.project == slug]
        yield _total(slug, "", mine, storage.project_bytes.get(slug, 0))


def _people(charges: list[UsageRow]) -> Iterator[UsageRow]:
    """Everyone with sessions or files (storage: their homes and outboxes)."""
    for email in sorted({r.email for r in charges}):
        mine = [r for r in charges if r.email == email]
        yield _total("", email, mine, sum(r.storage_bytes for r in mine))


CSV_HEADER = (
    "from",
    "to",
    "project",
    "email",
    "sessions",
    "hours",
    "storage_mb",
    "datasets",
    "cpu_seconds",
)


def to_csv(report: UsageReport) -> str:
    """The per project and person rows as CSV, for charging (4.4.02)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for row in report.charges:
        writer.writerow(
            (
                report.start.isoformat(),
                report.end.isoformat(),
                row.project,
                row.email,
                row.sessions,
                f"{row.hours:.2f}",
                f"{row.storage_mb:.3f}",
                " ".join(row.datasets),
                "" if row.cpu_seconds is None else f"{row.cpu_seconds:.1f}",
            )
        )
    return out.getvalue()
