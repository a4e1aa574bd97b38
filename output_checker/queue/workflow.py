"""The review workflow as data: statuses, owners, phases, the transition table, votes, turns and
per-file decisions. Pure: no database, no I/O, no clock.

The service layer asks :func:`check_transition` before it changes a request's status, and a
policy (``policies.PRECONDITIONS``) named by the transition before it commits. Faces ask
:func:`can_transition` to decide which buttons to draw. Changing the workflow means editing
:data:`TRANSITIONS` here and regenerating ``docs/review-queue-states.md``
(``python -m output_checker.queue.workflow > docs/review-queue-states.md``); a test fails
while the two differ.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from output_checker.queue.errors import WorkflowError


class Status(StrEnum):
    """Where a request is. REJECTED, WITHDRAWN and REVOKED are final; RELEASED is final except
    for revocation (breach handling, the queue's own addition)."""

    PENDING = "pending"
    SUBMITTED = "submitted"
    PARTIALLY_REVIEWED = "partially_reviewed"
    REVIEWED = "reviewed"
    RETURNED = "returned"
    APPROVED = "approved"
    RELEASED = "released"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    REVOKED = "revoked"


class Owner(StrEnum):
    """Who has the next move on a request in a status."""

    AUTHOR = "author"
    REVIEWERS = "reviewers"
    SYSTEM = "system"
    NONE = "none"  # nobody: the request is finished


class Party(StrEnum):
    """Who may make a transition. ``checker`` means an *eligible* checker: holding the
    output_checker role and not a member, past or present, of the request's project."""

    AUTHOR = "author"
    CHECKER = "checker"
    ADMIN = "admin"
    SYSTEM = "system"


class Phase(StrEnum):
    """What each party may see of the current turn (see ``visibility``)."""

    AUTHOR = "author"
    INDEPENDENT = "independent"
    CONSOLIDATING = "consolidating"
    COMPLETE = "complete"


class Vote(StrEnum):
    """A reviewer's vote on one output."""

    APPROVED = "approved"
    CHANGES_REQUESTED = "changes_requested"
    UNDECIDED = "undecided"


class Choice(StrEnum):
    """The two vote buttons; pressing the one already chosen resets the vote."""

    APPROVE = "approve"
    REQUEST_CHANGES = "request_changes"


class Decision(StrEnum):
    """A file's decision from the votes of submitted reviews."""

    INCOMPLETE = "incomplete"
    APPROVED = "approved"
    CONFLICTED = "conflicted"
    CHANGES_REQUESTED = "changes_requested"


class Signoff(StrEnum):
    """A custodian's (or delegate's) decision on releasing outputs derived from their dataset."""

    APPROVE = "approve"
    REFUSE = "refuse"


class SignoffState(StrEnum):
    """Where one dataset's custodian sign-off of a request stands in the current turn."""

    PENDING = "pending"
    APPROVED = "approved"
    REFUSED = "refused"


class FileKind(StrEnum):
    """Outputs are voted on and released; supporting files give context and never leave."""

    OUTPUT = "output"
    SUPPORTING = "supporting"


class Visibility(StrEnum):
    """Who may read a comment."""

    PUBLIC = "public"  # the author's side sees it once the turn allows
    PRIVATE = "private"  # checkers only


class CheckStatus(StrEnum):
    """The server's automated verdict on an output (the checker's pass / review / fail)."""

    PASS = "pass"
    REVIEW = "review"
    FAIL = "fail"


class Recheck(StrEnum):
    """What the server could establish about an output's numbers."""

    MATCHES = "matches"  # re-derived from the project's data: the numbers are the data's
    DOES_NOT_MATCH = "does_not_match"  # re-derived, and the submitted numbers differ
    NOT_MACHINE_CHECKABLE = "not_machine_checkable"  # no recipe: people must judge it


STATUS_OWNERS: Mapping[Status, Owner] = MappingProxyType(
    {
        Status.PENDING: Owner.AUTHOR,
        Status.SUBMITTED: Owner.REVIEWERS,
        Status.PARTIALLY_REVIEWED: Owner.REVIEWERS,
        Status.REVIEWED: Owner.REVIEWERS,
        Status.RETURNED: Owner.AUTHOR,
        Status.APPROVED: Owner.SYSTEM,
        Status.RELEASED: Owner.NONE,
        Status.REJECTED: Owner.NONE,
        Status.WITHDRAWN: Owner.NONE,
        Status.REVOKED: Owner.NONE,
    }
)

PHASES: Mapping[Status, Phase] = MappingProxyType(
    {
        Status.PENDING: Phase.AUTHOR,
        Status.RETURNED: Phase.AUTHOR,
        Status.SUBMITTED: Phase.INDEPENDENT,
        Status.PARTIALLY_REVIEWED: Phase.INDEPENDENT,
        Status.REVIEWED: Phase.CONSOLIDATING,
        Status.APPROVED: Phase.COMPLETE,
        Status.RELEASED: Phase.COMPLETE,
        Status.REJECTED: Phase.COMPLETE,
        Status.WITHDRAWN: Phase.COMPLETE,
        Status.REVOKED: Phase.COMPLETE,
    }
)


@dataclass(frozen=True)
class Transition:
    """One edge of the state machine.

    ``precondition`` names a rule in ``policies.PRECONDITIONS`` checked against the request
    before the change commits; ``event`` is the audit event type; ``advances_turn`` says
    whether the request changes hands (the turn counter goes up); ``notify`` says who is told
    after commit.
    """

    source: Status
    target: Status
    who: frozenset[Party]
    precondition: str
    event: str
    advances_turn: bool
    notify: str
    label: str


_AUTHOR = frozenset({Party.AUTHOR})
_CHECKER = frozenset({Party.CHECKER})
_SYSTEM = frozenset({Party.SYSTEM})
_REVOKERS = frozenset({Party.CHECKER, Party.ADMIN})


def _t(
    source: Status,
    target: Status,
    who: frozenset[Party],
    precondition: str,
    event: str,
    label: str,
    *,
    turn: bool = False,
    notify: str = "",
) -> tuple[tuple[Status, Status], Transition]:
    return (source, target), Transition(
        source, target, who, precondition, event, turn, notify, label
    )


S = Status
TRANSITIONS: Mapping[tuple[Status, Status], Transition] = MappingProxyType(
    dict(
        [
            _t(
                S.PENDING,
                S.SUBMITTED,
                _AUTHOR,
                "submittable",
                "queue_request_submit",
                "submit",
                turn=True,
                notify="checkers",
            ),
            _t(S.PENDING, S.WITHDRAWN, _AUTHOR, "none", "queue_request_withdraw", "withdraw"),
            _t(
                S.SUBMITTED,
                S.PARTIALLY_REVIEWED,
                _CHECKER,
                "review_complete",
                "queue_review_submit",
                "first review",
                notify="checkers",
            ),
            _t(
                S.PARTIALLY_REVIEWED,
                S.REVIEWED,
                _CHECKER,
                "review_complete",
                "queue_review_submit",
                "second review",
                notify="checkers",
            ),
            _t(
                S.SUBMITTED,
                S.RETURNED,
                _CHECKER,
                "none",
                "queue_request_early_return",
                "early return",
                turn=True,
                notify="author",
            ),
            _t(
                S.PARTIALLY_REVIEWED,
                S.RETURNED,
                _CHECKER,
                "none",
                "queue_request_early_return",
                "early return",
                turn=True,
                notify="author",
            ),
            _t(
                S.REVIEWED,
                S.RETURNED,
                _CHECKER,
                "returnable",
                "queue_request_return",
                "return",
                turn=True,
                notify="author",
            ),
            _t(
                S.REVIEWED,
                S.APPROVED,
                _CHECKER,
                "approvable",
                "queue_request_approve",
                "approve",
                notify="author",
            ),
            _t(
                S.REVIEWED,
                S.REJECTED,
                _CHECKER,
                "reasoned",
                "queue_request_reject",
                "reject",
                notify="author",
            ),
            _t(
                S.RETURNED,
                S.SUBMITTED,
                _AUTHOR,
                "resubmittable",
                "queue_request_resubmit",
                "resubmit",
                turn=True,
                notify="checkers",
            ),
            _t(S.RETURNED, S.WITHDRAWN, _AUTHOR, "none", "queue_request_withdraw", "withdraw"),
            _t(
                S.APPROVED,
                S.RELEASED,
                _SYSTEM,
                "all_uploaded",
                "queue_request_release",
                "release",
                notify="author",
            ),
            _t(
                S.APPROVED,
                S.REVOKED,
                _REVOKERS,
                "reasoned",
                "queue_release_revoke",
                "revoke",
                notify="author",
            ),
            _t(
                S.RELEASED,
                S.REVOKED,
                _REVOKERS,
                "reasoned",
                "queue_release_revoke",
                "revoke",
                notify="author",
            ),
        ]
    )
)

# A request comes into being PENDING; this is the table's entry edge (for the diagram).
CREATE_EVENT = "queue_request_create"
APPROVALS_NEEDED = 2
# Besides the reviews: per dataset whose policy asks for it, this many sign-offs by its
# custodian or a delegate with no tie to the project, in the current turn (SATRE 3.1.06).
SIGNOFFS_NEEDED = 1


def is_final(status: Status) -> bool:
    """Nobody owns the request any more (RELEASED can still be revoked)."""
    return STATUS_OWNERS[status] is Owner.NONE


def is_editing(status: Status) -> bool:
    """The author holds the request and may change its files and groups."""
    return STATUS_OWNERS[status] is Owner.AUTHOR


def is_under_review(status: Status) -> bool:
    """Checkers hold the request: votes, comments and reviews are open."""
    return STATUS_OWNERS[status] is Owner.REVIEWERS


def phase_of(status: Status) -> Phase:
    """The blinding phase of a status."""
    return PHASES[status]


def transitions_from(status: Status) -> list[Transition]:
    """The edges leaving ``status``, in table order."""
    return [t for (source, _), t in TRANSITIONS.items() if source == status]


def check_transition(source: Status, target: Status, party: Party) -> Transition:
    """Return the transition ``source`` -> ``target`` if ``party`` may make it.

    Raises WorkflowError (rule ``status``) if there is no such edge, or (rule ``party``) if
    the edge belongs to someone else.
    """
    transition = TRANSITIONS.get((source, target))
    if transition is None:
        allowed = ", ".join(t.target.value for t in transitions_from(source)) or "nothing"
        raise WorkflowError(
            f"a {source.value} request cannot become {target.value} (it may become: {allowed})",
            rule="status",
        )
    if party not in transition.who:
        who = " or ".join(sorted(p.value for p in transition.who))
        raise WorkflowError(
            f"only the {who} may {transition.label} a {source.value} request", rule="party"
        )
    return transition


def can_transition(source: Status, target: Status, party: Party) -> bool:
    """Whether :func:`check_transition` would allow the move."""
    try:
        check_transition(source, target, party)
    except WorkflowError:
        return False
    return True


def next_turn(turn: int, transition: Transition) -> int:
    """The review turn after ``transition``: it goes up whenever the request changes hands."""
    return turn + 1 if transition.advances_turn else turn


def status_after_review(submitted_reviews: int, current: Status) -> Status:
    """Consolidation: the first submitted review makes a request partially reviewed, the
    second makes it reviewed; later reviews (a third checker) leave it reviewed."""
    if submitted_reviews >= APPROVALS_NEEDED:
        return Status.REVIEWED
    if submitted_reviews == 1 and current is Status.SUBMITTED:
        return Status.PARTIALLY_REVIEWED
    return current


def toggle(current: Vote | None, choice: Choice) -> Vote:
    """The vote after pressing ``choice``: pressing the button already chosen resets it."""
    chosen = Vote.APPROVED if choice is Choice.APPROVE else Vote.CHANGES_REQUESTED
    return Vote.UNDECIDED if current is chosen else chosen


def file_decision(votes: Iterable[Vote]) -> Decision:
    """A file's decision from the votes of *submitted* reviews, rules top to bottom: fewer than
    two decided votes, incomplete; at least two approvals, approved (so a third checker can
    unblock a request); all changes requested, changes requested; otherwise conflicted."""
    decided = [v for v in votes if v is not Vote.UNDECIDED]
    approvals = sum(v is Vote.APPROVED for v in decided)
    if len(decided) < APPROVALS_NEEDED:
        return Decision.INCOMPLETE
    if approvals >= APPROVALS_NEEDED:
        return Decision.APPROVED
    if approvals == 0:
        return Decision.CHANGES_REQUESTED
    return Decision.CONFLICTED


def signoff_state(decisions: Iterable[Signoff]) -> SignoffState:
    """One dataset's sign-off from the decisions of its signers this turn: any refusal
    refuses (the custodian's veto: the request goes back or is rejected); enough approvals
    approve; otherwise pending."""
    made = list(decisions)
    if Signoff.REFUSE in made:
        return SignoffState.REFUSED
    if sum(d is Signoff.APPROVE for d in made) >= SIGNOFFS_NEEDED:
        return SignoffState.APPROVED
    return SignoffState.PENDING


def decision_for_author(decision: Decision) -> Decision:
    """What the author's side sees: a conflict between checkers reads as changes requested."""
    return Decision.CHANGES_REQUESTED if decision is Decision.CONFLICTED else decision


def vote_after_resubmit(vote: Vote) -> Vote:
    """On resubmission change requests become undecided; approvals survive (an updated file
    lost its votes when it was updated)."""
    return Vote.UNDECIDED if vote is Vote.CHANGES_REQUESTED else vote


def override_reason(choice: Choice, status: CheckStatus | None, recheck: Recheck | None) -> str:
    """Why a vote needs a written comment, or "" when it does not (SACRO-Viewer's rule,
    extended): approving an output the server failed, whose numbers do not match the data, or
    that no machine could check; requesting changes on one the server passed."""
    if choice is Choice.APPROVE:
        if status is CheckStatus.FAIL:
            return "the automated check failed this output"
        if recheck is Recheck.DOES_NOT_MATCH:
            return "this output does not match the data"
        if recheck is Recheck.NOT_MACHINE_CHECKABLE:
            return "this output is not machine-checkable"
    elif status is CheckStatus.PASS:
        return "the automated check passed this output"
    return ""


def mermaid() -> str:
    """The state diagram in Mermaid syntax, generated from :data:`TRANSITIONS`."""
    lines = ["stateDiagram-v2", f"    [*] --> {Status.PENDING.value}: create (author)"]
    for transition in TRANSITIONS.values():
        who = ", ".join(sorted(p.value for p in transition.who))
        lines.append(
            f"    {transition.source.value} --> {transition.target.value}: "
            f"{transition.label} ({who})"
        )
    lines.extend(f"    {s.value} --> [*]" for s in Status if not transitions_from(s))
    return "\n".join(lines)


def states_document() -> str:
    """The whole of ``docs/review-queue-states.md``: diagram, owners and transition table."""
    owners = [f"| {s.value} | {STATUS_OWNERS[s].value} | {PHASES[s].value} |" for s in Status]
    edges = [
        f"| {t.source.value} | {t.target.value} | {', '.join(sorted(p.value for p in t.who))} "
        f"| {t.precondition} | `{t.event}` | {'yes' if t.advances_turn else ''} |"
        for t in TRANSITIONS.values()
    ]
    return "\n".join(
        [
            "# Review queue: request states",
            "",
            "Generated from `output_checker/queue/workflow.py` by",
            "`python -m output_checker.queue.workflow > docs/review-queue-states.md`;",
            "a test fails when this page and the table differ. See `review-queue.md`.",
            "",
            "```mermaid",
            mermaid(),
            "```",
            "",
            "| status | owner | phase |",
            "|---|---|---|",
            *owners,
            "",
            "| from | to | who | precondition | audit event | turn + 1 |",
            "|---|---|---|---|---|---|",
            *edges,
            "",
        ]
    )


if __name__ == "__main__":  # pragma: no cover - regenerates the document
    print(states_document(), end="")
