"""What a request's state allows, and the preconditions the transition table names. Pure.

Role rules are in ``permissions``; these rules read only the request (``RequestFacts``) and
the project's state. Like the role rules, each state rule has a raising ``check_*`` and a
boolean ``can_*`` twin. :data:`PRECONDITIONS` maps every ``Transition.precondition`` name to
the function that enforces it; a test keeps the two complete.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from output_checker.queue.errors import WorkflowError
from output_checker.queue.facts import EgressFacts, FileFacts, RequestFacts, SignoffFacts
from output_checker.queue.workflow import (
    TRANSITIONS,
    CheckStatus,
    Decision,
    Recheck,
    SignoffState,
    Status,
    Transition,
    Visibility,
    Vote,
    is_editing,
    is_under_review,
    signoff_state,
)

WRITABLE_PROJECT_STATES = frozenset({"active"})


@dataclass(frozen=True)
class Attempt:
    """Who attempts a transition and what they supplied with it."""

    actor: str
    reason: str = ""


def _allowed(check: Callable[[], None]) -> bool:
    try:
        check()
    except WorkflowError:
        return False
    return True


def check_project_writable(project_state: str) -> None:
    """Writes are frozen unless the project is active (suspended, closed, ... projects)."""
    if project_state not in WRITABLE_PROJECT_STATES:
        raise WorkflowError(
            f"the project is {project_state}: its requests accept no changes",
            rule="project_state",
        )


def check_can_edit(request: RequestFacts) -> None:
    """Files, groups and exceptions change only while the author holds the request."""
    if not is_editing(request.status):
        raise WorkflowError(
            f"a {request.status.value} request cannot be changed by its author", rule="status"
        )


def check_can_vote(request: RequestFacts, reviewer: str) -> None:
    """Votes are open while checkers hold the request, until the voter submits a review."""
    if not is_under_review(request.status):
        raise WorkflowError(
            f"a {request.status.value} request is not open for votes", rule="status"
        )
    if reviewer in request.submitted_reviewers():
        raise WorkflowError(
            "your review of this turn is submitted: its votes can no longer change",
            rule="review_submitted",
        )


def check_can_submit_review(request: RequestFacts, reviewer: str) -> None:
    """The same window as votes: once per reviewer per turn."""
    check_can_vote(request, reviewer)


def check_can_comment(request: RequestFacts, *, reviewer_side: bool) -> None:
    """The author's side comments in its own turns, checkers while they hold the request."""
    open_now = is_under_review(request.status) if reviewer_side else is_editing(request.status)
    if not open_now:
        side = "checkers" if reviewer_side else "the author's side"
        raise WorkflowError(
            f"{side} cannot comment on a {request.status.value} request", rule="status"
        )


def check_can_make_public(request: RequestFacts) -> None:
    """Private comments are promoted during review and consolidation."""
    check_can_comment(request, reviewer_side=True)


def check_reviewer_can_see(request: RequestFacts) -> None:
    """Checkers see a request only once it has been submitted."""
    if request.turn == 0:
        raise WorkflowError("this request has not been submitted yet", rule="status")


def check_can_download(request: RequestFacts) -> None:
    """Checkers download files of a submitted request (PENDING is the author's draft)."""
    check_reviewer_can_see(request)
    if request.status is Status.WITHDRAWN:
        raise WorkflowError("this request was withdrawn", rule="status")


def check_can_download_release(status: Status) -> None:
    """Released files are downloadable until the release is revoked."""
    if status is not Status.RELEASED:
        raise WorkflowError(
            f"the files of a {status.value} request are not released", rule="not_released"
        )


def can_edit(request: RequestFacts) -> bool:
    """Boolean twin of ``check_can_edit``: whether it would pass."""
    return _allowed(lambda: check_can_edit(request))


def can_vote(request: RequestFacts, reviewer: str) -> bool:
    """Boolean twin of ``check_can_vote``: whether it would pass."""
    return _allowed(lambda: check_can_vote(request, reviewer))


def can_submit_review(request: RequestFacts, reviewer: str) -> bool:
    """Boolean twin of ``check_can_submit_review``: whether it would pass."""
    return _allowed(lambda: check_can_submit_review(request, reviewer))


def can_comment(request: RequestFacts, *, reviewer_side: bool) -> bool:
    """Boolean twin of ``check_can_comment``: whether it would pass."""
    return _allowed(lambda: check_can_comment(request, reviewer_side=reviewer_side))


def can_download(request: RequestFacts) -> bool:
    """Boolean twin of ``check_can_download``: whether it would pass."""
    return _allowed(lambda: check_can_download(request))


def can_download_release(status: Status) -> bool:
    """Boolean twin of ``check_can_download_release``: whether it would pass."""
    return _allowed(lambda: check_can_download_release(status))


# ----- preconditions of transitions ---------------------------------------------------------


def _names(files: Iterable[FileFacts]) -> str:
    return ", ".join(sorted(f.name for f in files))


def _commented_groups(
    request: RequestFacts, *, by: str | None = None, public_only: bool = False
) -> set[str]:
    return {
        c.group
        for c in request.comments
        if c.turn == request.turn
        and c.group is not None
        and (by is None or c.author == by)
        and (not public_only or c.visibility is Visibility.PUBLIC)
    }


def failed(file: FileFacts) -> bool:
    """The server failed the output, or found that its numbers do not match the data."""
    return file.automated is CheckStatus.FAIL or file.recheck is Recheck.DOES_NOT_MATCH


def _check_contents(request: RequestFacts) -> None:
    outputs = request.outputs
    if not outputs:
        raise WorkflowError("a request needs at least one output file", rule="no_outputs")
    used = {f.group for f in request.files if not f.withdrawn}
    bare = sorted(
        g.name for g in request.groups if g.name in used and not (g.context and g.controls)
    )
    if bare:
        raise WorkflowError(
            f"describe the context and the disclosure controls of group(s): {', '.join(bare)}",
            rule="group_context",
        )
    unchecked = [f for f in outputs if f.automated is None]
    if unchecked:
        raise WorkflowError(f"not yet checked: {_names(unchecked)}", rule="unchecked")
    unexplained = [f for f in outputs if failed(f) and not f.exception.strip()]
    if unexplained:
        raise WorkflowError(
            f"failing output(s) need an exception request: {_names(unexplained)}",
            rule="exception_required",
        )


def submittable(request: RequestFacts, attempt: Attempt) -> None:
    """The author holds an egress right for every dataset needing sign-off; at least one
    output; context and controls on every group in use; every output checked by the server,
    and every failing one carrying the researcher's exception request."""
    check_egress_rights(request)
    _check_contents(request)


def review_complete(request: RequestFacts, attempt: Attempt) -> None:
    """The reviewer voted on every output, and commented this turn on each group in which
    they requested changes."""
    mine = {f.id: f.votes.get(attempt.actor, (Vote.UNDECIDED, 0))[0] for f in request.outputs}
    undecided = [f for f in request.outputs if mine[f.id] is Vote.UNDECIDED]
    if undecided:
        raise WorkflowError(
            f"vote on every output first: {_names(undecided)}", rule="votes_missing"
        )
    asking = {f.group for f in request.outputs if mine[f.id] is Vote.CHANGES_REQUESTED}
    silent = sorted(asking - _commented_groups(request, by=attempt.actor))
    if silent:
        raise WorkflowError(
            f"explain the changes you request in a comment on group(s): {', '.join(silent)}",
            rule="comment_required",
        )


def groups_to_explain_on_return(request: RequestFacts) -> set[str]:
    """Groups with an output not approved (changes requested, conflicted or undecided)."""
    return {f.group for f in request.outputs if request.decision(f) is not Decision.APPROVED}


def returnable(request: RequestFacts, attempt: Attempt) -> None:
    """Every group with an output not approved has a public comment this turn, so the author
    knows what to change."""
    silent = sorted(
        groups_to_explain_on_return(request) - _commented_groups(request, public_only=True)
    )
    if silent:
        raise WorkflowError(
            f"write a public comment for the author on group(s): {', '.join(silent)}",
            rule="public_comment_required",
        )


def approvable(request: RequestFacts, attempt: Attempt) -> None:
    """Every output has at least two approvals among the submitted reviews of this turn; the
    author still holds an egress right for, and a current signer signed off this turn,
    every dataset needing sign-off; the releasing checker wrote an overall comment."""
    if not request.outputs:
        raise WorkflowError("there is no output to release", rule="no_outputs")
    waiting = [f for f in request.outputs if request.decision(f) is not Decision.APPROVED]
    if waiting:
        raise WorkflowError(
            f"output(s) without two approvals: {_names(waiting)}", rule="not_approved"
        )
    check_egress_rights(request)
    check_signoffs(request)
    reasoned(request, attempt)


def reasoned(request: RequestFacts, attempt: Attempt) -> None:
    """A written reason or comment accompanies the decision."""
    if not attempt.reason.strip():
        raise WorkflowError("give a reason for this decision", rule="reason_required")


def groups_to_explain_on_resubmit(request: RequestFacts) -> set[str]:
    """Groups with changes requested in the last review turn, or with outputs added,
    updated, moved or re-added in this turn."""
    previous = request.previous_review_turn()
    asked = {
        f.group
        for f in request.outputs
        if previous is not None
        and request.decision(f, previous) in (Decision.CHANGES_REQUESTED, Decision.CONFLICTED)
    }
    return asked | {f.group for f in request.outputs if f.content_turn == request.turn}


def resubmittable(request: RequestFacts, attempt: Attempt) -> None:
    """As for submission, and the author explained in a public comment this turn each group
    with changes requested or with new, updated, moved or re-added outputs."""
    check_egress_rights(request)
    _check_contents(request)
    explained = _commented_groups(request, by=attempt.actor, public_only=True)
    silent = sorted(groups_to_explain_on_resubmit(request) - explained)
    if silent:
        raise WorkflowError(
            f"explain your changes in a public comment on group(s): {', '.join(silent)}",
            rule="public_comment_required",
        )


def commented_groups(
    request: RequestFacts, *, by: str | None = None, public_only: bool = False
) -> set[str]:
    """Groups with a comment this turn (by ``by``, public only if asked)."""
    return _commented_groups(request, by=by, public_only=public_only)


def all_uploaded(request: RequestFacts, attempt: Attempt) -> None:
    """Every output of the release has reached the released area."""
    if request.pending_uploads:
        raise WorkflowError(
            f"{request.pending_uploads} file(s) are not released yet", rule="uploads_pending"
        )


# ----- custodian egress rights and sign-off (SATRE 3.1.06) ---------------------------------


def _egress(request: RequestFacts) -> tuple[EgressFacts, ...]:
    if request.egress is None:  # fail closed: a caller that did not load them releases nothing
        raise WorkflowError(
            "the custodian sign-off requirements of this request were not loaded",
            rule="egress_unknown",
        )
    return request.egress


def check_egress_rights(request: RequestFacts) -> None:
    """The author holds an egress right for each dataset whose policy requires sign-off."""
    missing = [e.dataset for e in _egress(request) if not e.author_has_right]
    if missing:
        raise WorkflowError(
            f"{request.author} holds no egress right for dataset(s) {', '.join(missing)}: "
            "ask its custodian for one",
            rule="egress_right",
        )


def current_signoffs(request: RequestFacts, egress: EgressFacts) -> tuple[SignoffFacts, ...]:
    """The dataset's sign-offs that count: this turn's, by people who may sign off now (a
    removed delegate's no longer count)."""
    return tuple(
        s for s in egress.signoffs if s.turn == request.turn and s.signer in egress.signers
    )


def signoff_of(request: RequestFacts, egress: EgressFacts) -> SignoffState:
    """Where the dataset's sign-off of the request stands this turn."""
    return signoff_state(s.decision for s in current_signoffs(request, egress))


def check_signoffs(request: RequestFacts) -> None:
    """Every dataset needing sign-off has it this turn, and none was refused."""
    states = {e.dataset: signoff_of(request, e) for e in _egress(request)}
    refused = sorted(d for d, state in states.items() if state is SignoffState.REFUSED)
    if refused:
        raise WorkflowError(
            f"the custodian refused the release of outputs of: {', '.join(refused)}",
            rule="signoff_refused",
        )
    waiting = sorted(d for d, state in states.items() if state is SignoffState.PENDING)
    if waiting:
        raise WorkflowError(
            f"custodian sign-off required for: {', '.join(waiting)}", rule="signoff_required"
        )


def check_can_sign_off(request: RequestFacts, dataset: str, signer: str) -> None:
    """Sign-offs are open while checkers hold the request, once per signer and dataset per
    turn, for the datasets that need one."""
    if not is_under_review(request.status):
        raise WorkflowError(
            f"a {request.status.value} request is not open for sign-off", rule="status"
        )
    egress = next((e for e in _egress(request) if e.dataset == dataset), None)
    if egress is None:
        raise WorkflowError(
            f"dataset {dataset} needs no sign-off for this request", rule="no_signoff_needed"
        )
    if any(s.signer == signer and s.turn == request.turn for s in egress.signoffs):
        raise WorkflowError(
            "your sign-off of this turn is recorded: it can no longer change",
            rule="signoff_recorded",
        )


def can_sign_off(request: RequestFacts, dataset: str, signer: str) -> bool:
    """Boolean twin of ``check_can_sign_off``: whether it would pass."""
    return _allowed(lambda: check_can_sign_off(request, dataset, signer))


def none(request: RequestFacts, attempt: Attempt) -> None:
    """No precondition."""


Precondition = Callable[[RequestFacts, Attempt], None]
PRECONDITIONS: Mapping[str, Precondition] = MappingProxyType(
    {
        "none": none,
        "submittable": submittable,
        "review_complete": review_complete,
        "returnable": returnable,
        "approvable": approvable,
        "reasoned": reasoned,
        "resubmittable": resubmittable,
        "all_uploaded": all_uploaded,
    }
)


def check_precondition(transition: Transition, request: RequestFacts, attempt: Attempt) -> None:
    """Enforce the precondition ``transition`` names; raises WorkflowError with the reason."""
    PRECONDITIONS[transition.precondition](request, attempt)


def preconditions_complete(
    transitions: Mapping[tuple[Status, Status], Transition] = TRANSITIONS,
) -> set[str]:
    """Precondition names used by the table but missing here (a test wants none)."""
    return {t.precondition for t in transitions.values()} - set(PRECONDITIONS)


def status_for_author(request: RequestFacts) -> Status:
    """The status as the author's side may know it: submitted until review ends, so the
    number of reviews already in is not revealed."""
    if request.status in (Status.PARTIALLY_REVIEWED, Status.REVIEWED):
        return Status.SUBMITTED
    return request.status
