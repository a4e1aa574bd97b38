"""Blinding as a pure filter: which comments, votes and activity a viewer may see, and which
file decision they are shown. Nothing is ever written back onto rows: every item carries the
turn it belongs to, and visibility follows from the turn, the phase and the viewer.

* author phase (pending, returned): checkers see their own items and everything before
  this turn; the author's side sees public items, including its own side's of this turn;
* independent phase (submitted, partially reviewed): checkers see their own items of this
  turn and everything before it; the author's side sees public items before this turn;
* consolidating phase (reviewed): checkers see everything; the author's side sees public
  items before this turn;
* complete phase (approved, released, rejected, withdrawn, revoked): checkers see
  everything, the author's side every public item.

Items of a voided turn (early return) are seen by their own author only, so half-finished
reviews never leak.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

from output_checker.queue.facts import FileFacts, RequestFacts
from output_checker.queue.workflow import (
    Decision,
    Phase,
    Visibility,
    Vote,
    decision_for_author,
    phase_of,
)


class Item(Protocol):
    """Anything turn-stamped that someone wrote: a comment, a vote, an audit event."""

    @property
    def author(self) -> str: ...

    @property
    def turn(self) -> int: ...

    @property
    def visibility(self) -> Visibility: ...


T = TypeVar("T", bound=Item)


@dataclass(frozen=True)
class Viewer:
    """The person looking; ``reviewer`` is true for an eligible checker of the request."""

    email: str
    reviewer: bool


@dataclass(frozen=True)
class VoteItem:
    """A vote as an item: votes are private to checkers."""

    author: str
    file: str
    vote: Vote
    turn: int
    visibility: Visibility = Visibility.PRIVATE


def is_visible(
    item: Item, turn: int, phase: Phase, viewer: Viewer, voided_turns: frozenset[int] = frozenset()
) -> bool:
    """Whether ``viewer`` may see ``item`` while the request is at ``turn`` in ``phase``."""
    if item.author == viewer.email:
        return True
    if item.turn in voided_turns:
        return False
    if viewer.reviewer:
        return item.turn < turn or phase in (Phase.CONSOLIDATING, Phase.COMPLETE)
    if item.visibility is not Visibility.PUBLIC:
        return False
    return item.turn < turn or phase in (Phase.AUTHOR, Phase.COMPLETE)


def visible_items(
    items: Iterable[T],
    turn: int,
    phase: Phase,
    viewer: Viewer,
    voided_turns: frozenset[int] = frozenset(),
) -> Iterator[T]:
    """The items ``viewer`` may see, in their original order."""
    return (item for item in items if is_visible(item, turn, phase, viewer, voided_turns))


def visible_decision(request: RequestFacts, file: FileFacts, viewer: Viewer) -> Decision:
    """The decision on ``file`` that ``viewer`` is shown.

    While reviews are independent it is incomplete for everyone; during consolidation only
    checkers see it; in the author's turn everyone sees the decision as it stood at the end of
    the last review turn; afterwards the final one. The author's side sees a conflict between
    checkers as changes requested.
    """
    phase = phase_of(request.status)
    if phase is Phase.INDEPENDENT or (phase is Phase.CONSOLIDATING and not viewer.reviewer):
        return Decision.INCOMPLETE
    if phase is Phase.AUTHOR:
        previous = request.previous_review_turn()
        decision = Decision.INCOMPLETE if previous is None else request.decision(file, previous)
    else:
        decision = request.decision(file)
    return decision if viewer.reviewer else decision_for_author(decision)


def vote_items(request: RequestFacts) -> list[VoteItem]:
    """Every vote of the request as a turn-stamped private item."""
    return [
        VoteItem(reviewer, file.id, vote, turn)
        for file in request.files
        for reviewer, (vote, turn) in sorted(file.votes.items())
    ]
