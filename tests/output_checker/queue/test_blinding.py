"""Blinding: the pure filter, then one request walked through several turns through the
service layer, asserting at each step what the author, checker A and checker B see."""

from __future__ import annotations

from dataclasses import dataclass

from enclave.control.context import Context
from output_checker.queue import service
from output_checker.queue.visibility import Viewer, is_visible, visible_items
from output_checker.queue.workflow import Decision, Phase, Status, Visibility
from tests.output_checker.queue.factories import (
    QueueWorld,
    distinct,
    make_request,
    passing_output,
)


@dataclass(frozen=True)
class Note:
    author: str
    turn: int
    visibility: Visibility


AUTHOR = Viewer("author@x", reviewer=False)
A = Viewer("a@x", reviewer=True)
B = Viewer("b@x", reviewer=True)


def test_own_items_are_always_visible() -> None:
    mine = Note("a@x", 3, Visibility.PRIVATE)
    for phase in Phase:
        assert is_visible(mine, 3, phase, A, frozenset({3}))


def test_independent_reviews_are_blind_to_each_other_and_to_the_author() -> None:
    b_now = Note("b@x", 1, Visibility.PUBLIC)
    b_before = Note("b@x", 0, Visibility.PRIVATE)
    assert not is_visible(b_now, 1, Phase.INDEPENDENT, A)
    assert is_visible(b_before, 1, Phase.INDEPENDENT, A)
    assert is_visible(b_now, 1, Phase.CONSOLIDATING, A)
    assert not is_visible(b_now, 1, Phase.CONSOLIDATING, AUTHOR)
    assert not is_visible(b_now, 1, Phase.INDEPENDENT, AUTHOR)


def test_the_author_sees_public_items_of_earlier_turns_never_private_ones() -> None:
    public, private = Note("b@x", 1, Visibility.PUBLIC), Note("b@x", 1, Visibility.PRIVATE)
    assert is_visible(public, 2, Phase.AUTHOR, AUTHOR)
    assert not is_visible(private, 2, Phase.AUTHOR, AUTHOR)
    assert is_visible(public, 1, Phase.COMPLETE, AUTHOR)
    assert not is_visible(private, 1, Phase.COMPLETE, AUTHOR)
    assert is_visible(private, 1, Phase.COMPLETE, A)


def test_the_authors_replies_reach_checkers_only_after_resubmission() -> None:
    reply = Note("author@x", 2, Visibility.PUBLIC)
    assert not is_visible(reply, 2, Phase.AUTHOR, A)
    assert is_visible(reply, 3, Phase.INDEPENDENT, A)


def test_voided_turns_are_hidden_from_everyone_but_the_writer() -> None:
    notes = [Note("b@x", 1, Visibility.PUBLIC), Note("a@x", 1, Visibility.PRIVATE)]
    assert list(visible_items(notes, 2, Phase.AUTHOR, AUTHOR, frozenset({1}))) == []
    assert list(visible_items(notes, 2, Phase.AUTHOR, A, frozenset({1}))) == [notes[1]]


def _seen(ctx: Context, viewer: str, rid: str) -> tuple[set[str], dict[str, str], list[str]]:
    detail = service.get_request(ctx, viewer, rid)
    return (
        {c.body for c in detail.comments},
        {f.name: f.decision.value for f in detail.files},
        sorted(f"{v.reviewer}:{v.vote}" for v in detail.votes),
    )


def test_blinding_across_turns(ctx: Context, qw: QueueWorld) -> None:
    out = distinct(passing_output(qw))
    rid = make_request(ctx, qw, Status.PENDING, outputs=(out,))
    file_id = service.get_request(ctx, qw.author, rid).files[0].id
    service.comment(ctx, qw.author, rid, body="author: turn 0 note", group="tables")
    service.submit(ctx, qw.author, rid)

    # Turn 1, independent: each checker sees only their own votes and comments.
    service.vote(ctx, qw.checker_a, rid, file_id, "request_changes", comment="A: round please")
    service.comment(ctx, qw.checker_a, rid, body="A: private", group="tables", visibility="private")
    service.vote(ctx, qw.checker_b, rid, file_id, "approve")
    service.comment(ctx, qw.checker_b, rid, body="B: public", group="tables")
    a_comments, a_decisions, a_votes = _seen(ctx, qw.checker_a, rid)
    assert a_comments == {"author: turn 0 note", "A: round please", "A: private"}
    assert a_votes == [f"{qw.checker_a}:changes_requested"]
    assert a_decisions == {"by-region.csv": Decision.INCOMPLETE.value}
    b_comments, _, b_votes = _seen(ctx, qw.checker_b, rid)
    assert b_comments == {"author: turn 0 note", "B: public"}
    assert b_votes == [f"{qw.checker_b}:approved"]
    service.submit_review(ctx, qw.checker_a, rid)
    author_comments, author_decisions, author_votes = _seen(ctx, qw.author, rid)
    assert author_comments == {"author: turn 0 note"}
    assert author_votes == []
    assert service.get_request(ctx, qw.author, rid).summary.status is Status.SUBMITTED
    assert b_votes == _seen(ctx, qw.checker_b, rid)[2]  # A's submitted review still hidden
    service.submit_review(ctx, qw.checker_b, rid)

    # Turn 1, consolidating: checkers see everything; the author still nothing of turn 1.
    a_comments, a_decisions, a_votes = _seen(ctx, qw.checker_a, rid)
    assert {"A: private", "B: public", "A: round please"} <= a_comments
    assert a_votes == sorted([f"{qw.checker_a}:changes_requested", f"{qw.checker_b}:approved"])
    assert a_decisions == {"by-region.csv": Decision.CONFLICTED.value}
    assert _seen(ctx, qw.author, rid)[0] == {"author: turn 0 note"}
    assert _seen(ctx, qw.author, rid)[1] == {"by-region.csv": Decision.INCOMPLETE.value}
    service.return_request(ctx, qw.checker_a, rid, comment="A: please round to 5")

    # Turn 2, the author's: public items of turn 1 only; conflicts read as changes requested.
    author_comments, author_decisions, author_votes = _seen(ctx, qw.author, rid)
    assert author_comments == {"author: turn 0 note", "B: public", "A: please round to 5"}
    assert author_decisions == {"by-region.csv": Decision.CHANGES_REQUESTED.value}
    assert author_votes == []
    service.comment(ctx, qw.author, rid, body="author: rounded now", group="tables")
    assert "author: rounded now" not in _seen(ctx, qw.checker_a, rid)[0]
    assert _seen(ctx, qw.checker_a, rid)[1] == {"by-region.csv": Decision.CONFLICTED.value}
    service.resubmit(ctx, qw.author, rid)

    # Turn 3, independent again: the reply arrives; turn 1 stays visible to checkers; A's
    # change request became undecided, B's approval survived.
    a_comments, a_decisions, a_votes = _seen(ctx, qw.checker_a, rid)
    assert "author: rounded now" in a_comments and "B: public" in a_comments
    assert a_votes == sorted([f"{qw.checker_a}:undecided", f"{qw.checker_b}:approved"])
    assert a_decisions == {"by-region.csv": Decision.INCOMPLETE.value}
    service.vote(ctx, qw.checker_a, rid, file_id, "approve")
    assert f"{qw.checker_a}:approved" not in _seen(ctx, qw.checker_b, rid)[2]

    # An early return voids turn 3: the author never sees what happened in it.
    service.comment(ctx, qw.checker_a, rid, body="A: turn 3 thoughts", group="tables")
    service.return_request(ctx, qw.checker_b, rid, comment="B: wrong file attached")
    author_comments, author_decisions, _ = _seen(ctx, qw.author, rid)
    assert "A: turn 3 thoughts" not in author_comments
    assert "B: wrong file attached" in author_comments
    assert author_decisions == {"by-region.csv": Decision.INCOMPLETE.value}
    assert "A: turn 3 thoughts" not in _seen(ctx, qw.checker_b, rid)[0]
    assert "A: turn 3 thoughts" in _seen(ctx, qw.checker_a, rid)[0]
    activity = service.activity(ctx, qw.author, rid)
    assert "queue_request_early_return" in {e.event for e in activity}
    assert "queue_vote" not in {e.event for e in activity}
    assert "queue_vote" in {e.event for e in service.activity(ctx, qw.checker_a, rid)}
