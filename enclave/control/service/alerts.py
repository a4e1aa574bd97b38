"""Security-log alerts (SATRE 2.5.03): read the audit log since the last scan, raise an Alert for
each suspicious occurrence, and keep them in the admins' review queue until someone closes
each as ``benign`` or ``incident``.

What raises an alert (thresholds in ``Thresholds``):

- ``failed_logins``: an email reaches the login guard's lockout (its refused logins since its
  last successful one, within the guard's window, reach the guard's limit);
- ``refused_access``: one person's session starts are refused ``refused_starts`` times within
  ``refused_window``;
- ``blocked_attempt``: anything refused by a sanction or a freeze (rules ``sanctioned``,
  ``frozen``): one alert per person, action, project and rule each clock hour, so a client
  that retries cannot flood the queue;
- ``export_volume``: a project's releases in one UTC day exceed ``releases_per_day`` or their
  files ``files_per_day``;
- ``governance_change``: a project's principal investigator or a dataset's custodian changed
  (``set_project_pi``, ``transfer_custody``): one alert per change, about ``project:SLUG`` or
  ``dataset:SLUG``. Until an admin reviews it the project or dataset shows
  ``flagged_for_review`` (``flagged``).

``find_alerts`` is the whole decision over a list of events and does no I/O. Every alert has
a ``key`` naming its occurrence (the triggering event, or the project and day), unique in the
table, so scanning the same events twice raises nothing twice. Alerts name people by the
email of their account and projects by slug; never a data value or a free-text reason.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from enclave.control.audit import canonical_json, format_time
from enclave.control.context import Context
from enclave.control.db import transaction
from enclave.control.errors import Conflict, InvalidInput, NotFound
from enclave.control.models import Alert, AuditEvent, Person
from enclave.control.rules import Action
from enclave.control.service import login_guard
from enclave.control.service._base import (
    authorize,
    clean_paragraph,
    perform,
    read,
    read_as,
    record,
)

FAILED_LOGINS = "failed_logins"
REFUSED_ACCESS = "refused_access"
BLOCKED_ATTEMPT = "blocked_attempt"
EXPORT_VOLUME = "export_volume"
GOVERNANCE_CHANGE = "governance_change"
KINDS = (FAILED_LOGINS, REFUSED_ACCESS, BLOCKED_ATTEMPT, EXPORT_VOLUME, GOVERNANCE_CHANGE)
# the audited changes that are flagged for review, by what they change
GOVERNED = {
    "project": Action.SET_PROJECT_PI.value,
    "dataset": Action.TRANSFER_CUSTODY.value,
}
BLOCKING_RULES = frozenset({"sanctioned", "frozen"})
OUTCOMES = ("benign", "incident")
SCAN_EVENT = Action.SCAN_ALERTS.value


@dataclass(frozen=True)
class Thresholds:
    """When an alert is raised. The login pair is the login guard's own, so an alert means
    an account was locked out."""

    failed_logins: int = login_guard.MAX_FAILURES
    login_window: timedelta = login_guard.WINDOW
    refused_starts: int = 3
    refused_window: timedelta = timedelta(hours=1)
    releases_per_day: int = 5
    files_per_day: int = 50

    @property
    def lookback(self) -> timedelta:
        """How far before the first new event the rules need to see: two windows (a burst's
        start is judged by the window before it)."""
        return 2 * max(self.login_window, self.refused_window)


DEFAULT = Thresholds()


@dataclass(frozen=True)
class Event:
    """The fields of an audit event the rules read."""

    seq: int
    at: datetime
    actor: str
    action: str
    outcome: str
    project: str | None
    detail: dict[str, Any]


@dataclass(frozen=True)
class Candidate:
    """An alert the rules found: its kind, subject, occurrence key, JSON detail, and the
    sequence number of the event that raised it."""

    kind: str
    subject: str
    key: str
    detail: dict[str, Any]
    trigger: int


@dataclass(frozen=True)
class AlertView:
    uuid: str
    kind: str
    subject: str
    detail: dict[str, Any]
    raised_at: datetime
    reviewed_at: datetime | None
    reviewed_by: str | None
    outcome: str
    note: str

    @property
    def open(self) -> bool:
        return self.reviewed_at is None


@dataclass(frozen=True)
class ScanReport:
    """A scan: events up to ``through_seq`` read (``read`` of them new), alerts raised."""

    through_seq: int
    read: int
    raised: tuple[AlertView, ...] = ()


# -- the pure rules -------------------------------------------------------------------------


def _bursts(
    events: Iterable[tuple[Event, bool]], threshold: int, window: timedelta
) -> list[tuple[Event, int]]:
    """The events at which a burst begins, with the count then: each ``(event, counted)``
    with ``counted`` False resets the count (a successful login); a counted event begins a
    burst when, with those within ``window`` before it, the count reaches ``threshold`` and
    it had not at the counted event before. A burst that goes on raises nothing more."""
    recent: deque[datetime] = deque()
    above = False
    found = []
    for event, counted in events:
        if not counted:
            recent.clear()
            above = False
            continue
        while recent and recent[0] < event.at - window:
            recent.popleft()
        recent.append(event.at)
        reached = len(recent) >= threshold
        if reached and not above:
            found.append((event, len(recent)))
        above = reached
    return found


def _by(events: Iterable[Event], key: Any) -> dict[Any, list[Event]]:
    groups: dict[Any, list[Event]] = defaultdict(list)
    for event in events:
        groups[key(event)].append(event)
    return groups


def _failed_logins(events: Sequence[Event], limits: Thresholds) -> list[Candidate]:
    logins = [e for e in events if e.action == "login"]
    found = []
    for email, mine in sorted(_by(logins, lambda e: e.actor).items()):
        # As the guard counts: a success resets, a refusal by the lockout itself is ignored.
        marked = [
            (e, e.outcome == "refused")
            for e in mine
            if e.outcome != "refused" or e.detail.get("reason") != login_guard.LOCKED_REASON
        ]
        window = int(limits.login_window.total_seconds() // 60)
        for event, count in _bursts(marked, limits.failed_logins, limits.login_window):
            detail = {"failures": count, "window_minutes": window, "at": format_time(event.at)}
            key = f"{FAILED_LOGINS}:{event.seq}"
            found.append(Candidate(FAILED_LOGINS, email, key, detail, event.seq))
    return found


def _refused_access(events: Sequence[Event], limits: Thresholds) -> list[Candidate]:
    refused = [e for e in events if e.action == "start_session" and e.outcome == "refused"]
    found = []
    for email, mine in sorted(_by(refused, lambda e: e.actor).items()):
        bursts = _bursts(((e, True) for e in mine), limits.refused_starts, limits.refused_window)
        for event, count in bursts:
            since = event.at - limits.refused_window
            recent = [e for e in mine if since <= e.at <= event.at]
            detail = {
                "refusals": count,
                "window_minutes": int(limits.refused_window.total_seconds() // 60),
                "rules": sorted({str(e.detail.get("rule") or "") for e in recent}),
                "projects": sorted({e.project or "" for e in recent}),
                "at": format_time(event.at),
            }
            key = f"{REFUSED_ACCESS}:{event.seq}"
            found.append(Candidate(REFUSED_ACCESS, email, key, detail, event.seq))
    return found


def _blocked_attempts(events: Sequence[Event]) -> list[Candidate]:
    found: dict[str, Candidate] = {}
    for e in events:
        rule = str(e.detail.get("rule") or "")
        if e.outcome != "refused" or rule not in BLOCKING_RULES:
            continue
        hour = e.at.strftime("%Y-%m-%dT%H")
        who = hashlib.sha256(f"{e.actor}\n{e.action}\n{e.project}\n{rule}".encode()).hexdigest()
        key = f"{BLOCKED_ATTEMPT}:{who[:32]}:{hour}"
        detail = {"action": e.action, "rule": rule, "project": e.project, "hour": hour}
        found.setdefault(key, Candidate(BLOCKED_ATTEMPT, e.actor, key, detail, e.seq))
    return list(found.values())


def _export_volume(events: Sequence[Event], limits: Thresholds) -> list[Candidate]:
    releases = [e for e in events if e.action == Action.RELEASE_OUTPUT.value and e.outcome == "ok"]
    found = []
    per_day = _by(releases, lambda e: (e.project or "", e.at.date().isoformat()))
    for (project, day), mine in sorted(per_day.items()):
        files = 0
        for count, event in enumerate(mine, start=1):
            files += len(event.detail.get("files") or ())
            if count > limits.releases_per_day or files > limits.files_per_day:
                detail = {
                    "project": project,
                    "day": day,
                    "releases": len(mine),
                    "files": sum(len(e.detail.get("files") or ()) for e in mine),
                    "limits": {"releases": limits.releases_per_day, "files": limits.files_per_day},
                }
                key = f"{EXPORT_VOLUME}:{project}:{day}"
                found.append(Candidate(EXPORT_VOLUME, project, key, detail, event.seq))
                break  # one alert per project and day: the day's totals so far are in it
    return found


def _governance_changes(events: Sequence[Event]) -> list[Candidate]:
    """One alert per successful change of PI or custodian, naming the old and new person."""
    scopes = {action: scope for scope, action in GOVERNED.items()}
    found = []
    for e in events:
        scope = scopes.get(e.action)
        if scope is None or e.outcome != "ok":
            continue
        # a project's change is audited under the project; a dataset's names it in the detail
        slug = str((e.project if scope == "project" else e.detail.get("dataset")) or "")
        detail = {
            "change": e.action,
            scope: slug,
            "before": e.detail.get("before"),
            "after": e.detail.get("after"),
            "by": e.actor,
            "at": format_time(e.at),
        }
        key = f"{GOVERNANCE_CHANGE}:{e.seq}"
        found.append(Candidate(GOVERNANCE_CHANGE, f"{scope}:{slug}", key, detail, e.seq))
    return found


def find_alerts(
    events: Sequence[Event], *, after_seq: int = 0, limits: Thresholds = DEFAULT
) -> list[Candidate]:
    """Every alert the events (in chain order) raise whose triggering event comes after
    ``after_seq``: the earlier events are context (the windows before the new ones, and the
    day of the new releases, from its start)."""
    found = (
        *_failed_logins(events, limits),
        *_refused_access(events, limits),
        *_blocked_attempts(events),
        *_export_volume(events, limits),
        *_governance_changes(events),
    )
    return [c for c in found if c.trigger > after_seq]


# -- the shell: the audit log, the alerts table ---------------------------------------------


def _event(row: AuditEvent) -> Event:
    at = _event_time(row.at)
    return Event(
        row.seq, at, row.actor, row.action, row.outcome, row.project, json.loads(row.detail)
    )


def _last_scanned(session: Session) -> int:
    query = (
        select(AuditEvent.detail)
        .where(AuditEvent.action == SCAN_EVENT, AuditEvent.outcome == "ok")
        .order_by(AuditEvent.seq.desc())
        .limit(1)
    )
    detail = session.scalar(query)
    return int(json.loads(detail).get("through_seq", 0)) if detail else 0


def _context_events(session: Session, after_seq: int, limits: Thresholds) -> list[Event]:
    """The new events, and the context the rules need before them, of the kinds they read."""
    first = session.scalar(
        select(AuditEvent.at).where(AuditEvent.seq > after_seq).order_by(AuditEvent.seq).limit(1)
    )
    if first is None:
        return []
    start = _event_time(first)
    since = min(start - limits.lookback, start.replace(hour=0, minute=0, second=0, microsecond=0))
    query = (
        select(AuditEvent)
        .where(
            AuditEvent.at >= format_time(since),
            or_(
                AuditEvent.action.in_(
                    ("login", "start_session", Action.RELEASE_OUTPUT.value, *GOVERNED.values())
                ),
                AuditEvent.outcome == "refused",
            ),
        )
        .order_by(AuditEvent.seq)
    )
    return [_event(row) for row in session.scalars(query)]


def _event_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _alert_view(session: Session, row: Alert) -> AlertView:
    reviewer = None
    if row.reviewed_by_id is not None:
        reviewer = session.scalar(select(Person.email).where(Person.id == row.reviewed_by_id))
    return AlertView(
        uuid=row.uuid,
        kind=row.kind,
        subject=row.subject,
        detail=json.loads(row.detail),
        raised_at=row.raised_at,
        reviewed_at=row.reviewed_at,
        reviewed_by=reviewer,
        outcome=row.outcome,
        note=row.note,
    )


def _unread(session: Session) -> tuple[int, int, int]:
    """(where the last scan stopped, the head of the log, how many events since, scans
    excepted)."""
    after = _last_scanned(session)
    head = session.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1))
    fresh = session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.seq > after, AuditEvent.action != SCAN_EVENT)
    )
    return after, head or 0, fresh or 0


def scan(ctx: Context, *, actor: str | None = None, limits: Thresholds = DEFAULT) -> ScanReport:
    """Read the audit log since the last scan and raise the alerts it calls for, in one
    transaction audited as ``scan_alerts`` (which records how far it read). ``actor``: the
    admin who asked (the CLI's ``--as``); None for the timer, recorded as ``system``.
    A scan that finds nothing new since the last one writes nothing (not even the state
    version, so it costs the read caches nothing)."""

    def peek(session: Session, me: Person | None) -> tuple[int, int]:
        if me is not None:
            authorize(me, Action.SCAN_ALERTS)
        after, _head, fresh = _unread(session)
        return after, fresh

    def work(session: Session, me: Person | None) -> ScanReport:
        if me is not None:
            authorize(me, Action.SCAN_ALERTS)
        after, head, fresh = _unread(session)  # again: another scan may have run meanwhile
        if not fresh:
            return ScanReport(after, 0)
        events = _context_events(session, after, limits)
        rows = _raise(session, ctx, find_alerts(events, after_seq=after, limits=limits))
        raised = [{"uuid": r.uuid, "kind": r.kind} for r in rows]
        record(
            session, ctx, actor or "system", SCAN_EVENT, through_seq=head, read=fresh, raised=raised
        )
        return ScanReport(head, fresh, tuple(_alert_view(session, r) for r in rows))

    # A read first: most scans find nothing new, and then write nothing.
    if actor is not None:
        after, fresh = read_as(ctx, actor, Action.SCAN_ALERTS, peek)
    else:
        after, fresh = read(ctx, lambda session: peek(session, None))
    if not fresh:
        return ScanReport(after, 0)
    if actor is not None:
        return perform(ctx, actor, Action.SCAN_ALERTS, work)
    with transaction(ctx.engine) as session:
        return work(session, None)


def _raise(session: Session, ctx: Context, candidates: Sequence[Candidate]) -> list[Alert]:
    """Add an Alert for each candidate whose key is not in the table yet."""
    keys = [c.key[:200] for c in candidates]
    known = set(session.scalars(select(Alert.key).where(Alert.key.in_(keys)))) if keys else set()
    rows = []
    now = ctx.now()
    for candidate in candidates:
        key = candidate.key[:200]
        if key in known:
            continue
        known.add(key)
        row = Alert(
            uuid=str(uuid.uuid4()),
            kind=candidate.kind,
            subject=candidate.subject[:320],
            key=key,
            detail=canonical_json(candidate.detail),
            raised_at=now,
        )
        session.add(row)
        rows.append(row)
    session.flush()
    return rows


def flagged(session: Session, scope: str) -> set[str]:
    """The slugs of the projects (``scope`` "project") or datasets ("dataset") whose PI or
    custodian changed and no admin has reviewed it yet: an open ``governance_change`` alert,
    or a change the scanner has not read yet (it is flagged from the moment it is made)."""
    prefix = f"{scope}:"
    open_alerts = session.scalars(
        select(Alert.subject).where(
            Alert.kind == GOVERNANCE_CHANGE,
            Alert.reviewed_at.is_(None),
            Alert.subject.startswith(prefix, autoescape=True),
        )
    )
    unscanned = session.scalars(
        select(AuditEvent.target).where(
            AuditEvent.seq > _last_scanned(session),
            AuditEvent.action == GOVERNED[scope],
            AuditEvent.outcome == "ok",
        )
    )
    return {s.removeprefix(prefix) for s in open_alerts} | set(unscanned)


def list_alerts(ctx: Context, actor: str, *, open_only: bool = True) -> list[AlertView]:
    """Alerts, newest first (the open ones only, by default); admins only."""

    def work(session: Session, me: Person) -> list[AlertView]:
        authorize(me, Action.LIST_ALERTS)
        query = select(Alert).order_by(Alert.raised_at.desc(), Alert.id.desc())
        if open_only:
            query = query.where(Alert.reviewed_at.is_(None))
        return [_alert_view(session, row) for row in session.scalars(query)]

    return read_as(ctx, actor, Action.LIST_ALERTS, work)


def review_alert(ctx: Context, actor: str, alert_uuid: str, outcome: str, note: str) -> AlertView:
    """Close an open alert as ``benign`` or ``incident``, with a note (``review_alert``)."""
    verdict = (outcome or "").strip().lower()
    if verdict not in OUTCOMES:
        raise InvalidInput(
            f"outcome {outcome!r} must be benign or incident", rule="invalid_outcome"
        )
    text = clean_paragraph(note, "note", 5000)

    def work(session: Session, me: Person) -> AlertView:
        authorize(me, Action.REVIEW_ALERT)
        row = session.scalar(select(Alert).where(Alert.uuid == (alert_uuid or "").strip()))
        if row is None:
            raise NotFound(f"unknown alert {alert_uuid!r}", rule="unknown_alert")
        if row.reviewed_at is not None:
            raise Conflict(f"this alert was already reviewed ({row.outcome})", rule="reviewed")
        row.reviewed_at, row.reviewed_by_id = ctx.now(), me.id
        row.outcome, row.note = verdict, text
        session.flush()
        record(
            session, ctx, me, Action.REVIEW_ALERT, target=row.uuid, kind=row.kind, verdict=verdict
        )
        return _alert_view(session, row)

    return perform(ctx, actor, Action.REVIEW_ALERT, work, target=alert_uuid)
