"""The workflow as data: every status owned, every unfinished status with a way out, the
generated diagram in step with the table, votes, decisions, turns and the override rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from output_checker.queue import policies
from output_checker.queue.errors import WorkflowError
from output_checker.queue.workflow import (
    PHASES,
    STATUS_OWNERS,
    TRANSITIONS,
    CheckStatus,
    Choice,
    Decision,
    Owner,
    Party,
    Recheck,
    Status,
    Vote,
    can_transition,
    check_transition,
    decision_for_author,
    file_decision,
    is_final,
    next_turn,
    override_reason,
    states_document,
    status_after_review,
    toggle,
    transitions_from,
    vote_after_resubmit,
)

DOC = Path(__file__).parents[3] / "docs" / "review-queue-states.md"
A, C, U = Vote.APPROVED, Vote.CHANGES_REQUESTED, Vote.UNDECIDED


def test_every_status_has_an_owner_and_a_phase() -> None:
    assert set(STATUS_OWNERS) == set(Status)
    assert set(PHASES) == set(Status)


def test_every_unfinished_status_has_a_way_out() -> None:
    for status in Status:
        if not is_final(status):
            assert transitions_from(status), f"{status} is a dead end"


def test_only_final_statuses_are_dead_ends_and_the_owners_move_them() -> None:
    dead_ends = {s for s in Status if not transitions_from(s)}
    assert dead_ends == {Status.REJECTED, Status.WITHDRAWN, Status.REVOKED}
    party_of_owner = {Owner.AUTHOR: Party.AUTHOR, Owner.REVIEWERS: Party.CHECKER}
    for transition in TRANSITIONS.values():
        owner = STATUS_OWNERS[transition.source]
        if owner in party_of_owner:
            assert party_of_owner[owner] in transition.who, transition
        if owner is Owner.SYSTEM and transition.target is Status.RELEASED:
            assert transition.who == {Party.SYSTEM}


def test_every_precondition_named_by_the_table_exists() -> None:
    assert policies.preconditions_complete() == set()


def test_the_states_document_is_generated_from_the_table() -> None:
    assert DOC.read_text(encoding="utf-8") == states_document(), (
        "regenerate: python -m output_checker.queue.workflow > docs/review-queue-states.md"
    )
    for transition in TRANSITIONS.values():
        assert f"{transition.source.value} --> {transition.target.value}" in DOC.read_text()


def test_check_transition_refuses_missing_edges_and_wrong_parties() -> None:
    with pytest.raises(WorkflowError, match="cannot become approved") as missing:
        check_transition(Status.PENDING, Status.APPROVED, Party.AUTHOR)
    assert missing.value.rule == "status"
    with pytest.raises(WorkflowError, match="only the checker may approve") as wrong:
        check_transition(Status.REVIEWED, Status.APPROVED, Party.AUTHOR)
    assert wrong.value.rule == "party"
    assert check_transition(Status.REVIEWED, Status.APPROVED, Party.CHECKER).event == (
        "queue_request_approve"
    )
    assert not can_transition(Status.APPROVED, Status.RELEASED, Party.CHECKER)
    assert can_transition(Status.APPROVED, Status.RELEASED, Party.SYSTEM)
    assert can_transition(Status.RELEASED, Status.REVOKED, Party.ADMIN)


def test_the_turn_goes_up_whenever_the_request_changes_hands() -> None:
    advancing = {(t.source, t.target) for t in TRANSITIONS.values() if t.advances_turn}
    assert advancing == {
        (Status.PENDING, Status.SUBMITTED),
        (Status.RETURNED, Status.SUBMITTED),
        (Status.REVIEWED, Status.RETURNED),
        (Status.SUBMITTED, Status.RETURNED),
        (Status.PARTIALLY_REVIEWED, Status.RETURNED),
    }
    submit = TRANSITIONS[(Status.PENDING, Status.SUBMITTED)]
    approve = TRANSITIONS[(Status.REVIEWED, Status.APPROVED)]
    assert next_turn(0, submit) == 1
    assert next_turn(3, approve) == 3


@pytest.mark.parametrize(
    ("votes", "decision"),
    [
        ((), Decision.INCOMPLETE),
        ((A,), Decision.INCOMPLETE),
        ((A, U), Decision.INCOMPLETE),
        ((A, A), Decision.APPROVED),
        ((A, A, C), Decision.APPROVED),  # a third checker unblocks
        ((A, C), Decision.CONFLICTED),
        ((C, C), Decision.CHANGES_REQUESTED),
        ((C, C, U), Decision.CHANGES_REQUESTED),
    ],
)
def test_a_file_is_approved_with_at_least_two_approvals(
    votes: tuple[Vote, ...], decision: Decision
) -> None:
    assert file_decision(votes) is decision


def test_the_author_sees_a_conflict_as_changes_requested() -> None:
    assert decision_for_author(Decision.CONFLICTED) is Decision.CHANGES_REQUESTED
    assert decision_for_author(Decision.APPROVED) is Decision.APPROVED


def test_pressing_the_same_vote_again_resets_it() -> None:
    assert toggle(None, Choice.APPROVE) is A
    assert toggle(A, Choice.APPROVE) is U
    assert toggle(A, Choice.REQUEST_CHANGES) is C
    assert toggle(C, Choice.REQUEST_CHANGES) is U


def test_resubmission_keeps_approvals_and_reopens_change_requests() -> None:
    assert vote_after_resubmit(A) is A
    assert vote_after_resubmit(C) is U
    assert vote_after_resubmit(U) is U


def test_consolidation_counts_submitted_reviews() -> None:
    assert status_after_review(1, Status.SUBMITTED) is Status.PARTIALLY_REVIEWED
    assert status_after_review(2, Status.PARTIALLY_REVIEWED) is Status.REVIEWED
    assert status_after_review(3, Status.REVIEWED) is Status.REVIEWED


@pytest.mark.parametrize(
    ("choice", "status", "recheck", "needs"),
    [
        (Choice.APPROVE, CheckStatus.FAIL, Recheck.MATCHES, "failed"),
        (Choice.APPROVE, CheckStatus.PASS, Recheck.DOES_NOT_MATCH, "does not match"),
        (Choice.APPROVE, CheckStatus.REVIEW, Recheck.NOT_MACHINE_CHECKABLE, "not machine"),
        (Choice.APPROVE, CheckStatus.PASS, Recheck.MATCHES, ""),
        (Choice.APPROVE, CheckStatus.REVIEW, Recheck.MATCHES, ""),
        (Choice.REQUEST_CHANGES, CheckStatus.PASS, Recheck.MATCHES, "passed"),
        (Choice.REQUEST_CHANGES, CheckStatus.FAIL, Recheck.MATCHES, ""),
        (Choice.REQUEST_CHANGES, CheckStatus.REVIEW, Recheck.NOT_MACHINE_CHECKABLE, ""),
    ],
)
def test_overriding_the_automated_verdict_needs_a_comment(
    choice: Choice, status: CheckStatus, recheck: Recheck, needs: str
) -> None:
    reason = override_reason(choice, status, recheck)
    assert (needs in reason) if needs else reason == ""
