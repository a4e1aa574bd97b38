"""The audit chain: appends link up, the database refuses changes, and ``verify`` names the
first bad event after each attack (edit, insert, delete, reorder, truncate), attempted in SQL
by someone who can drop the protecting triggers."""

from __future__ import annotations

import io
import itertools
import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from enclave.control import audit
from enclave.control.audit import GENESIS, event_hash
from enclave.control.context import Context
from enclave.control.db import transaction

MOMENT = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)

SQLITE_TRIGGERS = (
    "audit_events_no_update",
    "audit_events_no_delete",
    "audit_events_extend_head",
    "audit_head_forward_only",
)
POSTGRES_TRIGGERS = (
    "audit_events_no_change",
    "audit_events_extend_head",
    "audit_head_forward_only",
)


def _append(ctx: Context, n: int) -> None:
    with transaction(ctx.engine) as session:
        for i in range(n):
            audit.append(session, at=MOMENT, actor=f"a{i}@x.org", action="test", detail={"i": i})


def _sql(ctx: Context, statement: str, **params: object) -> None:
    with ctx.engine.begin() as connection:
        connection.execute(text(statement), params)


def _drop_triggers(ctx: Context) -> None:
    """What an attacker with the schema owner's rights does first."""
    if ctx.engine.dialect.name == "sqlite":
        for name in SQLITE_TRIGGERS:
            _sql(ctx, f"DROP TRIGGER {name}")
    else:
        for name in POSTGRES_TRIGGERS:
            table = "audit_head" if name.startswith("audit_head") else "audit_events"
            _sql(ctx, f"DROP TRIGGER {name} ON {table}")


def test_appends_form_a_chain_that_verifies(ctx: Context) -> None:
    _append(ctx, 5)
    events = audit.records(ctx.engine)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert events[0].prev_hash == GENESIS
    for before, after in itertools.pairwise(events):
        assert after.prev_hash == before.hash
    for event in events:
        assert event.hash == event_hash(
            {**event.to_dict(), "detail": audit.canonical_json(event.detail)}
        )
    report = audit.verify(ctx.engine)
    assert report.ok and report.checked == 5 and report.head_hash == events[-1].hash


def test_empty_log_verifies(ctx: Context) -> None:
    report = audit.verify(ctx.engine)
    assert report.ok and report.checked == 0 and report.head_hash == GENESIS


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET actor = 'mallory' WHERE seq = 2",
        "DELETE FROM audit_events WHERE seq = 3",
        "DELETE FROM audit_head",
        "UPDATE audit_head SET seq = 1",
        "INSERT INTO audit_events (seq, uuid, at, actor, action, outcome, target, project, "
        "detail, prev_hash, hash) VALUES (9, 'u9', 't', 'm', 'x', 'ok', '', NULL, '{}', 'p', 'h')",
    ],
    ids=["update", "delete", "delete-head", "rewind-head", "insert-off-chain"],
)
def test_database_refuses_tampering(ctx: Context, statement: str) -> None:
    _append(ctx, 3)
    with pytest.raises(DBAPIError):
        _sql(ctx, statement)
    assert audit.verify(ctx.engine).ok
    assert len(audit.records(ctx.engine)) == 3


def test_database_refuses_truncate_on_postgresql(ctx: Context) -> None:
    _append(ctx, 2)
    if ctx.engine.dialect.name != "postgresql":
        with pytest.raises(DBAPIError):  # SQLite has no TRUNCATE at all
            _sql(ctx, "TRUNCATE audit_events")
        return
    with pytest.raises(DBAPIError):
        _sql(ctx, "TRUNCATE audit_events")
    assert len(audit.records(ctx.engine)) == 2


def test_edit_is_detected_at_the_edited_event(ctx: Context) -> None:
    _append(ctx, 5)
    _drop_triggers(ctx)
    _sql(ctx, "UPDATE audit_events SET actor = 'mallory@x.org' WHERE seq = 3")
    report = audit.verify(ctx.engine)
    assert not report.ok
    assert report.first_bad_seq == 3
    assert "edited" in report.problem


def test_edit_with_recomputed_hash_breaks_the_next_link(ctx: Context) -> None:
    _append(ctx, 5)
    _drop_triggers(ctx)
    third = audit.records(ctx.engine)[2]
    forged = {**third.to_dict(), "actor": "mallory@x.org", "detail": '{"i":2}'}
    _sql(
        ctx,
        "UPDATE audit_events SET actor = :a, hash = :h WHERE seq = 3",
        a="mallory@x.org",
        h=event_hash(forged),
    )
    report = audit.verify(ctx.engine)
    assert not report.ok
    assert report.first_bad_seq == 4
    assert "previous-hash" in report.problem


def test_delete_is_detected_at_the_event_after_the_gap(ctx: Context) -> None:
    _append(ctx, 5)
    _drop_triggers(ctx)
    _sql(ctx, "DELETE FROM audit_events WHERE seq = 2")
    report = audit.verify(ctx.engine)
    assert not report.ok
    assert report.first_bad_seq == 3
    assert "deleted" in report.problem


def test_insert_is_detected_at_the_inserted_event(ctx: Context) -> None:
    _append(ctx, 4)
    _drop_triggers(ctx)
    # Make room after event 2 (highest first, so the key never collides), then slip one in.
    for seq in (4, 3):
        _sql(ctx, "UPDATE audit_events SET seq = :new WHERE seq = :old", new=seq + 1, old=seq)
    second = audit.records(ctx.engine)[1]
    fields = {
        "seq": 3,
        "uuid": "00000000-0000-0000-0000-000000000000",
        "at": second.at,
        "actor": "mallory@x.org",
        "action": "approve_grant",
        "outcome": "ok",
        "target": "",
        "project": None,
        "detail": "{}",
        "prev_hash": second.hash,
    }
    _sql(
        ctx,
        "INSERT INTO audit_events (seq, uuid, at, actor, action, outcome, target, project, detail, "
        "prev_hash, hash) VALUES (:seq, :uuid, :at, :actor, :action, :outcome, :target, :project, "
        ":detail, :prev_hash, :hash)",
        **fields,
        hash="f" * 64,
    )
    report = audit.verify(ctx.engine)
    assert not report.ok
    assert report.first_bad_seq == 3
    assert report.first_bad_uuid == fields["uuid"]


def test_reorder_is_detected_at_the_first_moved_event(ctx: Context) -> None:
    _append(ctx, 5)
    _drop_triggers(ctx)
    _sql(ctx, "UPDATE audit_events SET seq = 100 WHERE seq = 2")
    _sql(ctx, "UPDATE audit_events SET seq = 2 WHERE seq = 4")
    _sql(ctx, "UPDATE audit_events SET seq = 4 WHERE seq = 100")
    report = audit.verify(ctx.engine)
    assert not report.ok
    assert report.first_bad_seq == 2
    assert "reordered" in report.problem


def test_truncating_the_tail_is_detected_by_the_head(ctx: Context) -> None:
    _append(ctx, 5)
    _drop_triggers(ctx)
    _sql(ctx, "DELETE FROM audit_events WHERE seq >= 4")
    report = audit.verify(ctx.engine)
    assert not report.ok
    assert "head" in report.problem
    assert report.first_bad_seq == 4


def test_rewritten_chain_is_caught_by_an_anchor(ctx: Context) -> None:
    _append(ctx, 3)
    anchor = audit.verify(ctx.engine).head_hash
    assert audit.verify(ctx.engine, anchor=anchor).ok
    assert not audit.verify(ctx.engine, anchor="0" * 63 + "1").ok


def test_export_writes_json_lines_in_chain_order(ctx: Context) -> None:
    _append(ctx, 3)
    out = io.StringIO()
    report = audit.export(ctx.engine, out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["seq"] for line in lines] == [1, 2, 3]
    assert lines[1]["detail"] == {"i": 1}
    assert lines[-1]["hash"] == report.head_hash
    assert lines[1]["prev_hash"] == lines[0]["hash"]


def test_append_rolls_back_with_its_transaction(ctx: Context) -> None:
    with pytest.raises(RuntimeError), transaction(ctx.engine) as session:
        audit.append(session, at=MOMENT, actor="a@x.org", action="test")
        raise RuntimeError("the action failed after auditing")
    assert audit.records(ctx.engine) == []
    assert audit.verify(ctx.engine).ok


def test_naive_timestamps_are_refused(ctx: Context) -> None:
    with pytest.raises(ValueError), transaction(ctx.engine) as session:
        audit.append(session, at=datetime(2026, 1, 1), actor="a", action="test")
