"""Plain, frozen snapshots of a request and of the person acting on it: what the pure rules in
``permissions``, ``policies`` and ``visibility`` read. The service layer builds them from rows;
tests build them by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from output_checker.queue.workflow import (
    CheckStatus,
    Decision,
    FileKind,
    Recheck,
    Signoff,
    Status,
    Visibility,
    Vote,
    file_decision,
)

CHECKER_ROLE = "output_checker"
ADMIN_ROLE = "admin"
RESEARCHER_ROLE = "researcher"
DATALAB_CLIENT_ROLE = "datalab_client"


@dataclass(frozen=True)
class ActorFacts:
    """Who is acting, in relation to one project (and, when known, one request).

    ``is_member``: holds an open, unexpired researcher or data-lab membership of the project
    (a collaborator, who sees its requests); ``was_member``: holds or ever held a membership
    of the project in *any* role, the project's output-checker role included (membership rows
    are ended, never deleted). Any such tie bars reviewing: no member of the request's
    project may review, release, reject or download it.
    """

    email: str
    roles: frozenset[str]
    is_member: bool
    was_member: bool
    is_author: bool = False
    accredited: bool = True

    @property
    def is_checker(self) -> bool:
        return CHECKER_ROLE in self.roles

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles

    @property
    def is_researcher(self) -> bool:
        return RESEARCHER_ROLE in self.roles

    @property
    def is_datalab_client(self) -> bool:
        return DATALAB_CLIENT_ROLE in self.roles

    @property
    def is_reviewer(self) -> bool:
        """An eligible checker: the role, and no past or present tie to the project."""
        return self.is_checker and not self.was_member and not self.is_author


@dataclass(frozen=True)
class FileFacts:
    """One file of a request. ``votes`` maps reviewer email to (vote, turn it was cast in)."""

    id: str
    name: str
    group: str
    kind: FileKind
    withdrawn: bool = False
    automated: CheckStatus | None = None
    recheck: Recheck | None = None
    exception: str = ""
    content_turn: int = 0  # turn in which it was added, updated, moved or re-added
    votes: Mapping[str, tuple[Vote, int]] = field(default_factory=dict)

    @property
    def is_output(self) -> bool:
        """An output still in the request (withdrawn files and supporting files are not)."""
        return self.kind is FileKind.OUTPUT and not self.withdrawn


@dataclass(frozen=True)
class GroupFacts:
    """A group of files and the author's description of it."""

    name: str
    context: str = ""
    controls: str = ""


@dataclass(frozen=True)
class CommentFacts:
    """A comment; ``group`` is None for a request-level comment (early-return messages)."""

    id: str
    author: str
    group: str | None
    visibility: Visibility
    turn: int
    file: str | None = None


@dataclass(frozen=True)
class SignoffFacts:
    """A custodian's (or delegate's) sign-off of a request for one dataset, in one turn."""

    signer: str
    decision: Signoff
    turn: int
    reason: str = ""


@dataclass(frozen=True)
class EgressFacts:
    """A dataset of the request's project whose policy requires sign-off before release
    (SATRE 3.1.06): whether the author holds an egress right for it, who may sign off now
    (its custodian and active delegates) and the sign-offs recorded, every turn."""

    dataset: str
    author_has_right: bool
    signers: tuple[str, ...]
    signoffs: tuple[SignoffFacts, ...] = ()


@dataclass(frozen=True)
class RequestFacts:
    """A request as the rules see it. ``reviews`` maps turn to the reviewers who submitted."""

    id: str
    status: Status
    turn: int
    author: str
    files: tuple[FileFacts, ...] = ()
    groups: tuple[GroupFacts, ...] = ()
    comments: tuple[CommentFacts, ...] = ()
    reviews: Mapping[int, frozenset[str]] = field(default_factory=dict)
    voided_turns: frozenset[int] = frozenset()
    pending_uploads: int = 0  # outputs of the release not yet copied to the released area
    # the datasets needing custodian sign-off; None until the service loads them, and the
    # rules that read them refuse while it is None (``policies.check_egress_rights``)
    egress: tuple[EgressFacts, ...] | None = None

    @property
    def outputs(self) -> tuple[FileFacts, ...]:
        return tuple(f for f in self.files if f.is_output)

    def submitted_reviewers(self, turn: int | None = None) -> frozenset[str]:
        """Who submitted a review in ``turn`` (default: the current turn)."""
        return self.reviews.get(self.turn if turn is None else turn, frozenset())

    def decision(self, file: FileFacts, turn: int | None = None) -> Decision:
        """The file's decision from the current votes of the reviewers who submitted in
        ``turn``; nothing counts from a voided turn."""
        turn = self.turn if turn is None else turn
        if turn in self.voided_turns:
            return Decision.INCOMPLETE
        reviewers = self.submitted_reviewers(turn)
        return file_decision(vote for who, (vote, _) in file.votes.items() if who in reviewers)

    def previous_review_turn(self) -> int | None:
        """The last turn before the current one in which reviews were submitted and which was
        not voided: what the author's side is shown during its own turn."""
        earlier = [t for t in self.reviews if t < self.turn and t not in self.voided_turns]
        return max(earlier, default=None)
