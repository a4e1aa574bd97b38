"""Custodian egress rights in the queue (SATRE 3.1.06), by attempting the attacks: a
researcher without an egress right submits; two reviewers approve without the custodian's
sign-off; a delegate who is a member of the project, the author as delegate, a removed
delegate and an unrelated checker try to sign off; the custodian refuses. With the
custodian's sign-off the release goes through; without the policy nothing changes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial

import pytest

from enclave.control import audit
from enclave.control.context import Context
from enclave.control.errors import ControlError
from enclave.control.service import egress, people
from output_checker.queue import release, service
from output_checker.queue.service import signoffs
from output_checker.queue.workflow import SignoffState, Status
from tests.output_checker.queue.factories import DATASET, QueueWorld, approve_all, make_request

DELEGATE = "delegate@example.org"


def _policy(ctx: Context, qw: QueueWorld, *, right: bool = True) -> None:
    """The dataset needs sign-off; the author holds an egress right unless ``right`` is
    false; an output checker with no tie to the project is a delegate."""
    egress.set_egress_policy(ctx, qw.custodian, DATASET, True)
    if right:
        egress.grant_egress_right(ctx, qw.custodian, DATASET, qw.project, qw.author)
    people.create_person(
        ctx, qw.admin, email=DELEGATE, name="Del", organisation="Org", roles=["output_checker"]
    )
    egress.add_delegate(ctx, qw.custodian, DATASET, DELEGATE)


def _refused(
    ctx: Context, rule: str, call: Callable[[], object], *, audited: bool = True
) -> ControlError:
    """``call`` is refused by ``rule``, and the refusal audited (malformed input is refused
    before anything is looked up, and not audited)."""
    before = len(audit.records(ctx.engine))
    with pytest.raises(ControlError) as refused:
        call()
    assert refused.value.rule == rule, refused.value
    if audited:
        last = audit.records(ctx.engine)[-1]
        assert (last.outcome, last.detail["rule"]) == ("refused", rule)
    else:
        assert len(audit.records(ctx.engine)) == before
    return refused.value


def _status(ctx: Context, who: str, rid: str) -> Status:
    return service.get_request(ctx, who, rid).summary.status


def test_without_the_policy_todays_flow_is_unchanged(ctx: Context, qw: QueueWorld) -> None:
    # a policy on a dataset the project does not hold changes nothing either
    egress.set_egress_policy(ctx, qw.custodian, qw.base.other_dataset, True)
    rid = make_request(ctx, qw, Status.RELEASED)
    assert _status(ctx, qw.checker_a, rid) is Status.RELEASED
    assert signoffs.egress_status(ctx, qw.checker_a, rid).datasets == ()


def test_an_author_without_an_egress_right_cannot_submit(ctx: Context, qw: QueueWorld) -> None:
    _policy(ctx, qw, right=False)
    rid = make_request(ctx, qw, Status.PENDING)
    error = _refused(ctx, "egress_right", lambda: service.submit(ctx, qw.author, rid))
    assert str(error) == (
        f"{qw.author} holds no egress right for dataset(s) {DATASET}: ask its custodian for one"
    )
    assert _status(ctx, qw.author, rid) is Status.PENDING
    egress.grant_egress_right(ctx, DELEGATE, DATASET, qw.project, qw.author)
    assert service.submit(ctx, qw.author, rid).status is Status.SUBMITTED


def test_two_approvals_without_the_custodian_do_not_release(ctx: Context, qw: QueueWorld) -> None:
    _policy(ctx, qw)
    rid = make_request(ctx, qw, Status.REVIEWED)

    def approve() -> object:
        return service.approve(ctx, qw.checker_c, rid, comment="two approvals")

    error = _refused(ctx, "signoff_required", approve)
    assert str(error) == f"custodian sign-off required for: {DATASET}"
    assert _status(ctx, qw.checker_a, rid) is Status.REVIEWED
    (shown,) = signoffs.egress_status(ctx, qw.checker_a, rid).datasets
    assert shown.state is SignoffState.PENDING and not shown.can_sign
    custodian_view = signoffs.egress_status(ctx, qw.custodian, rid)
    assert custodian_view.can_sign and [o.name for o in custodian_view.outputs] == ["by-region.csv"]
    assert [r.request_id for r in signoffs.awaiting_signoff(ctx, qw.custodian)] == [rid]
    signed = signoffs.sign_off(ctx, qw.custodian, rid, dataset=DATASET, decision="approve")
    assert (signed.signer, signed.turn) == (qw.custodian, 1)
    assert audit.records(ctx.engine)[-1].action == "queue_egress_signoff"
    (shown,) = signoffs.egress_status(ctx, qw.author, rid).datasets
    assert shown.state is SignoffState.APPROVED and shown.approved_by == (qw.custodian,)
    assert signoffs.awaiting_signoff(ctx, qw.custodian) == []
    approve()
    assert release.release_request(ctx, rid).status == Status.RELEASED.value


def test_a_delegate_signs_off_once_and_a_removed_delegate_no_longer_counts(
    ctx: Context, qw: QueueWorld
) -> None:
    _policy(ctx, qw)
    rid = make_request(ctx, qw, Status.REVIEWED)
    signoffs.sign_off(ctx, DELEGATE, rid, dataset=DATASET, decision="approve")
    _refused(
        ctx,
        "signoff_recorded",
        lambda: signoffs.sign_off(
            ctx, DELEGATE, rid, dataset=DATASET, decision="refuse", reason="x"
        ),
    )
    egress.remove_delegate(ctx, qw.custodian, DATASET, DELEGATE)
    _refused(
        ctx,
        "signoff_required",
        lambda: service.approve(ctx, qw.checker_c, rid, comment="ok"),
    )
    # the removed delegate cannot sign off any more either
    _refused(
        ctx,
        "not_signer",
        lambda: signoffs.sign_off(ctx, DELEGATE, rid, dataset=DATASET, decision="approve"),
    )


def test_people_who_may_not_sign_off_are_refused(ctx: Context, qw: QueueWorld) -> None:
    _policy(ctx, qw)
    # a delegate who is a member of the project
    egress.add_delegate(ctx, qw.custodian, DATASET, qw.member_checker)
    rid = make_request(ctx, qw, Status.REVIEWED)
    for who, rule in (
        (qw.member_checker, "separation_of_duties"),
        (qw.former_member, "not_signer"),  # not a delegate at all
        (qw.checker_a, "not_signer"),  # an eligible reviewer is not a signer
        (qw.author, "not_signer"),
    ):
        _refused(
            ctx,
            rule,
            partial(signoffs.sign_off, ctx, who, rid, dataset=DATASET, decision="approve"),
        )
    _refused(
        ctx,
        "no_signoff_needed",
        lambda: signoffs.sign_off(
            ctx, qw.custodian, rid, dataset=qw.base.other_dataset, decision="approve"
        ),
    )
    _refused(
        ctx,
        "signoff_required",
        lambda: service.approve(ctx, qw.checker_c, rid, comment="ok"),
    )


def test_the_author_cannot_sign_off_their_own_request(ctx: Context, qw: QueueWorld) -> None:
    _policy(ctx, qw)
    # the author is also an output checker and the custodian's delegate
    dual = replace(qw, author=qw.member_checker)
    egress.grant_egress_right(ctx, qw.custodian, DATASET, qw.project, qw.member_checker)
    egress.add_delegate(ctx, qw.custodian, DATASET, qw.member_checker)
    rid = make_request(ctx, dual, Status.SUBMITTED)
    error = _refused(
        ctx,
        "separation_of_duties",
        lambda: signoffs.sign_off(ctx, qw.member_checker, rid, dataset=DATASET, decision="approve"),
    )
    assert "wrote this request" in str(error)


def test_a_refusal_blocks_the_release(ctx: Context, qw: QueueWorld) -> None:
    _policy(ctx, qw)
    rid = make_request(ctx, qw, Status.REVIEWED)
    _refused(
        ctx,
        "required",
        lambda: signoffs.sign_off(ctx, qw.custodian, rid, dataset=DATASET, decision="refuse"),
        audited=False,
    )
    _refused(
        ctx,
        "bad_decision",
        lambda: signoffs.sign_off(ctx, qw.custodian, rid, dataset=DATASET, decision="maybe"),
        audited=False,
    )
    signoffs.sign_off(
        ctx, qw.custodian, rid, dataset=DATASET, decision="refuse", reason="linkable to wards"
    )
    signoffs.sign_off(ctx, DELEGATE, rid, dataset=DATASET, decision="approve")
    (shown,) = signoffs.egress_status(ctx, qw.author, rid).datasets
    assert shown.state is SignoffState.REFUSED and shown.reasons == ("linkable to wards",)
    _refused(
        ctx,
        "signoff_refused",
        lambda: service.approve(ctx, qw.checker_c, rid, comment="ok"),
    )


def test_a_revoked_right_stops_the_release(ctx: Context, qw: QueueWorld) -> None:
    _policy(ctx, qw)
    rid = make_request(ctx, qw, Status.REVIEWED)
    signoffs.sign_off(ctx, qw.custodian, rid, dataset=DATASET, decision="approve")
    egress.revoke_egress_right(ctx, qw.custodian, DATASET, qw.project, qw.author)
    _refused(
        ctx,
        "egress_right",
        lambda: service.approve(ctx, qw.checker_c, rid, comment="ok"),
    )


def test_sign_off_waits_for_submission(ctx: Context, qw: QueueWorld) -> None:
    _policy(ctx, qw)
    rid = make_request(ctx, qw, Status.PENDING)
    _refused(
        ctx,
        "status",
        lambda: signoffs.sign_off(ctx, qw.custodian, rid, dataset=DATASET, decision="approve"),
    )
    # nor may the custodian read the author's draft
    _refused(ctx, "status", lambda: signoffs.egress_status(ctx, qw.custodian, rid))


def test_a_sign_off_counts_for_its_turn_only(ctx: Context, qw: QueueWorld) -> None:
    _policy(ctx, qw)
    rid = make_request(ctx, qw, Status.SUBMITTED)
    signoffs.sign_off(ctx, qw.custodian, rid, dataset=DATASET, decision="approve")
    service.return_request(ctx, qw.checker_a, rid, comment="please fix the labels")
    service.resubmit(ctx, qw.author, rid)
    approve_all(ctx, qw, rid, qw.checker_a)
    approve_all(ctx, qw, rid, qw.checker_b)
    (shown,) = signoffs.egress_status(ctx, qw.checker_c, rid).datasets
    assert shown.state is SignoffState.PENDING  # the outputs may have changed since
    _refused(
        ctx,
        "signoff_required",
        lambda: service.approve(ctx, qw.checker_c, rid, comment="ok"),
    )
    signoffs.sign_off(ctx, qw.custodian, rid, dataset=DATASET, decision="approve")
    assert service.approve(ctx, qw.checker_c, rid, comment="ok").approved_by == qw.checker_c
