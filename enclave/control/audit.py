"""The append-only, hash-chained audit log: append, verify, read and export.

Each event stores ``prev_hash``, the sha256 of the previous event's canonical JSON (every field
but ``hash``, keys sorted, no spaces), and its own ``hash`` computed the same way. Editing,
inserting, deleting or reordering events therefore breaks a link that ``verify`` reports,
naming the first bad event. The database refuses UPDATE and DELETE on the table (triggers in
the migration); ``append`` is called inside the caller's transaction, so an action and its
event commit together or not at all.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from enclave.control.db import transaction
from enclave.control.models import AuditEvent, AuditHead

GENESIS = "0" * 64
HASHED_FIELDS = (
    "seq",
    "uuid",
    "at",
    "actor",
    "action",
    "outcome",
    "target",
    "project",
    "detail",
    "prev_hash",
)


@dataclass(frozen=True)
class AuditRecord:
    """One event as stored; ``detail`` is the parsed JSON object."""

    seq: int
    uuid: str
    at: str
    actor: str
    action: str
    outcome: str
    target: str
    project: str | None
    detail: dict[str, Any]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as written by ``export``."""
        return {name: getattr(self, name) for name in (*HASHED_FIELDS, "hash")}


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of ``verify``: ``ok``, or the first bad event and what is wrong with it."""

    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    first_bad_uuid: str | None = None
    problem: str = ""

    def summary(self) -> str:
        """One line for people."""
        if self.ok:
            return f"audit chain intact: {self.checked} events, head {self.head_hash}"
        return f"audit chain broken at event {self.first_bad_seq}: {self.problem}"


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 kept: the one serialisation that gets hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(fields: Mapping[str, Any]) -> str:
    """sha256 (hex) of the canonical JSON of an event's HASHED_FIELDS."""
    payload = canonical_json({name: fields[name] for name in HASHED_FIELDS})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def format_time(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a Z, the stored form of ``at``.

    Raises ValueError for a naive datetime: its zone would be a guess.
    """
    if moment.tzinfo is None:
        raise ValueError("naive datetime given where UTC is required")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def append(
    session: Session,
    *,
    at: datetime,
    actor: str,
    action: str,
    outcome: str = "ok",
    target: str = "",
    project: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> AuditRecord:
    """Add one event at the head of the chain inside the caller's transaction.

    Locks the head row (PostgreSQL ``FOR UPDATE``; SQLite's write lock is already held), so
    concurrent appends line up one after another. Returns the stored record.
    """
    head = session.execute(
        select(AuditHead).where(AuditHead.id == 1).with_for_update()
    ).scalar_one()
    fields: dict[str, Any] = {
        "seq": head.seq + 1,
        "uuid": str(uuid.uuid4()),
        "at": format_time(at),
        # Refusals may echo untrusted input: cut it to the column sizes rather than fail.
        "actor": actor[:320],
        "action": action[:64],
        "outcome": outcome[:16],
        "target": target[:200],
        "project": None if project is None else project[:64],
        "detail": canonical_json(dict(detail or {})),
        "prev_hash": head.hash,
    }
    digest = event_hash(fields)
    session.add(AuditEvent(**fields, hash=digest))
    session.flush()  # the event must exist before the head may point at it (trigger)
    head.seq, head.hash = fields["seq"], digest
    session.flush()
    return _record(fields, digest)


def _record(fields: Mapping[str, Any], digest: str) -> AuditRecord:
    values = {name: fields[name] for name in HASHED_FIELDS}
    values["detail"] = json.loads(values["detail"])
    return AuditRecord(**values, hash=digest)


def _fields(event: AuditEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in HASHED_FIELDS}


@contextmanager
def _stream(session: Session, after_seq: int = 0) -> Iterator[Iterator[AuditEvent]]:
    """Events in chain order, fetched in batches; the cursor is closed even on early exit."""
    query = select(AuditEvent).where(AuditEvent.seq > after_seq).order_by(AuditEvent.seq)
    result = session.execute(query.execution_options(yield_per=1000)).scalars()
    try:
        yield iter(result)
    finally:
        result.close()


def verify(engine: Engine, *, anchor: str | None = None) -> VerifyReport:
    """Re-hash the whole chain and check every link, the numbering and the head row.

    ``anchor`` is a hash recorded earlier outside the database (``export`` prints the head);
    the check fails if no event carries it. Returns a VerifyReport naming the first bad event.
    """
    previous, expected_seq, checked, anchor_seen = GENESIS, 1, 0, anchor is None
    with transaction(engine, readonly=True) as session:
        with _stream(session) as events:
            for event in events:
                problem = _check_event(event, _fields(event), previous, expected_seq)
                if problem:
                    return VerifyReport(
                        False, checked, expected_seq - 1, previous, event.seq, event.uuid, problem
                    )
                previous, expected_seq, checked = event.hash, event.seq + 1, checked + 1
                anchor_seen = anchor_seen or event.hash == anchor
        head = session.get(AuditHead, 1)
    last_seq = expected_seq - 1
    if head is None or (head.seq, head.hash) != (last_seq, previous):
        said = "missing" if head is None else f"event {head.seq}"
        problem = f"the chain head names {said} but the log ends at event {last_seq}"
        return VerifyReport(False, checked, last_seq, previous, last_seq + 1, None, problem)
    if not anchor_seen:
        problem = f"no event carries the anchor hash {anchor}: the log was rewritten"
        return VerifyReport(False, checked, last_seq, previous, None, None, problem)
    return VerifyReport(True, checked, last_seq, previous)


def _check_event(
    event: AuditEvent, fields: Mapping[str, Any], previous: str, expected_seq: int
) -> str:
    if event.seq != expected_seq:
        return f"expected event {expected_seq} next, found {event.seq} (deleted or reordered)"
    if event.prev_hash != previous:
        return "its previous-hash does not match the event before it (inserted or reordered)"
    if event_hash(fields) != event.hash:
        return "its content does not match its hash (edited)"
    return ""


def records(
    engine: Engine,
    *,
    project: str | None = None,
    action: str | None = None,
    after_seq: int = 0,
    limit: int | None = None,
) -> list[AuditRecord]:
    """Events in chain order, optionally filtered by project slug and action name."""
    query = select(AuditEvent).where(AuditEvent.seq > after_seq).order_by(AuditEvent.seq)
    if project is not None:
        query = query.where(AuditEvent.project == project)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    if limit is not None:
        query = query.limit(limit)
    with transaction(engine, readonly=True) as session:
        return [_record(_fields(e), e.hash) for e in session.execute(query).scalars()]


def export(engine: Engine, out: TextIO, *, after_seq: int = 0) -> VerifyReport:
    """Write every event after ``after_seq`` to ``out`` as JSON lines, in chain order.

    Returns the verification of the whole chain at export time, whose head hash is worth
    keeping outside the enclave as an anchor for later ``verify`` runs.
    """
    with transaction(engine, readonly=True) as session, _stream(session, after_seq) as events:
        for event in events:
            out.write(canonical_json(_record(_fields(event), event.hash).to_dict()) + "\n")
    return verify(engine)
