"""Standing: whether a person may work and a project may run sessions and release outputs,
given their time-limited compliance records, organisation assurance, user agreement,
sanctions and freezes (SATRE 1.4.01-02, 1.5.01, 1.6.04).

Pure: no database, no clock. The service layer (``enclave.control.service.standing``) reads
the facts and calls ``person_standing`` and ``project_standing``; each returns a ``Standing``
naming the rule that refuses and a one-line reason fit to show the person concerned.

Everything recorded is enforced; the policy only adds what must exist. A recorded item that
has expired (a project's ethics approval, a person's training, an organisation's assurance)
refuses under any policy; a *missing* item refuses only when ``StandingPolicy`` requires it.
So an installation that records nothing keeps working, and one that records expiries has them
enforced without further configuration.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from types import MappingProxyType

# Kinds of a project's compliance items, and what each is called in a message.
PROJECT_KINDS: Mapping[str, str] = MappingProxyType(
    {
        "dsa": "data-sharing agreement",
        "ethics": "ethics approval",
        "funding": "funding",
        "dpia": "data protection impact assessment",
    }
)
# The kind of a person's compliance item (its reference is the course, its detail the version).
TRAINING = "training"

# The refusal rules, in the order they are checked.
PERSON_RULES = ("sanctioned", "organisation_assurance", "training", "user_agreement")
PROJECT_RULES = ("frozen", "compliance_lapsed")
STANDING_RULES = frozenset(PERSON_RULES + PROJECT_RULES)


class ItemStatus(StrEnum):
    VALID = "valid"
    EXPIRING = "expiring"  # valid, but expires within the warning window
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"  # an organisation's assurance, withdrawn before its expiry
    MISSING = "missing"  # never recorded, or not yet in force

    @property
    def in_force(self) -> bool:
        return self in (ItemStatus.VALID, ItemStatus.EXPIRING)


@dataclass(frozen=True)
class StandingPolicy:
    """What must exist, beyond what is recorded. The defaults keep an installation that
    records nothing working; production should set (in ``Settings``) the required training
    courses, ``organisation_assurance=True`` and the current ``user_agreement_version``.

    ``required_project_items``: kinds every project needs in force (a project created since
    compliance records exist has ``dsa`` and ``ethics`` ones; older projects count their
    references as valid until the project's end). ``required_training``: course names every
    person who starts a session needs. ``user_agreement_version``: the version a person must
    have accepted ("" requires none). ``warning_days``: how long before an expiry an item is
    reported as expiring.
    """

    required_project_items: tuple[str, ...] = ("dsa", "ethics")
    required_training: tuple[str, ...] = ()
    organisation_assurance: bool = False
    user_agreement_version: str = ""
    warning_days: int = 30

    def __post_init__(self) -> None:
        unknown = sorted(set(self.required_project_items) - set(PROJECT_KINDS))
        if unknown:
            raise ValueError(
                f"unknown project compliance kind(s) {', '.join(unknown)}; "
                f"known: {', '.join(PROJECT_KINDS)}"
            )
        if self.warning_days < 0:
            raise ValueError(f"warning_days must not be negative; got {self.warning_days}")


@dataclass(frozen=True)
class Record:
    """One current (not superseded) compliance record: of a project (``kind`` one of
    PROJECT_KINDS) or a person's training (``kind`` TRAINING, ``reference`` the course)."""

    kind: str
    reference: str
    valid_from: date
    expires_on: date
    detail: str = ""

    @property
    def item(self) -> str:
        """What the record is about: the project kind, or the training course."""
        return self.reference if self.kind == TRAINING else self.kind


@dataclass(frozen=True)
class OrganisationFact:
    name: str
    assured_until: date
    withdrawn: bool = False


@dataclass(frozen=True)
class SanctionFact:
    kind: str  # suspended | barred
    lifted: bool = False
    overturned: bool = False  # an appeal overturned it

    @property
    def active(self) -> bool:
        """A suspension holds until lifted; a bar never lifts. An overturned appeal ends both."""
        if self.overturned:
            return False
        return self.kind == "barred" or not self.lifted


@dataclass(frozen=True)
class FreezeFact:
    global_: bool  # the whole enclave (Freeze.project_id NULL)
    ended: bool = False


@dataclass(frozen=True)
class PersonFacts:
    organisation: str  # the person's organisation name
    assurance: OrganisationFact | None  # its record, if any
    training: tuple[Record, ...] = ()
    accepted_versions: frozenset[str] = frozenset()
    sanctions: tuple[SanctionFact, ...] = ()


@dataclass(frozen=True)
class ProjectFacts:
    records: tuple[Record, ...] = ()
    freezes: tuple[FreezeFact, ...] = ()


@dataclass(frozen=True)
class ItemState:
    """The status of one compliance item on ``today``."""

    item: str  # project kind, training course or organisation name
    status: ItemStatus
    required: bool
    reference: str = ""
    expires_on: date | None = None
    valid_from: date | None = None


@dataclass(frozen=True)
class Standing:
    """``rule`` is None when in standing; otherwise the refusing rule and why."""

    rule: str | None = None
    reason: str = "in standing"
    items: tuple[ItemState, ...] = field(default=(), compare=False)

    @property
    def ok(self) -> bool:
        return self.rule is None


def status_on(valid_from: date, expires_on: date, today: date, warning_days: int) -> ItemStatus:
    """The status of an item valid from ``valid_from`` to ``expires_on`` (both days included)."""
    if today < valid_from:
        return ItemStatus.MISSING
    if expires_on < today:
        return ItemStatus.EXPIRED
    if expires_on <= today + timedelta(days=warning_days):
        return ItemStatus.EXPIRING
    return ItemStatus.VALID


def record_states(
    records: Iterable[Record], required: Iterable[str], today: date, warning_days: int
) -> tuple[ItemState, ...]:
    """The state of every required item and of every recorded one, required first."""
    by_item = {r.item: r for r in records}
    needed = list(dict.fromkeys(required))
    states = []
    for item in needed + sorted(set(by_item) - set(needed)):
        rec = by_item.get(item)
        if rec is None:
            states.append(ItemState(item, ItemStatus.MISSING, True))
            continue
        status = status_on(rec.valid_from, rec.expires_on, today, warning_days)
        states.append(
            ItemState(item, status, item in needed, rec.reference, rec.expires_on, rec.valid_from)
        )
    return tuple(states)


def organisation_state(facts: PersonFacts, today: date, policy: StandingPolicy) -> ItemState | None:
    """The state of the person's organisation assurance; None when nothing is recorded and
    nothing is required."""
    org = facts.assurance
    if org is None:
        if not policy.organisation_assurance:
            return None
        return ItemState(facts.organisation, ItemStatus.MISSING, True)
    if org.withdrawn:
        status = ItemStatus.WITHDRAWN
    else:
        status = status_on(date.min, org.assured_until, today, policy.warning_days)
    return ItemState(org.name, status, policy.organisation_assurance, "", org.assured_until)


def _lapse(state: ItemState, label: str) -> str:
    if state.status is ItemStatus.MISSING and state.valid_from is not None:
        return f"{label} is not valid until {state.valid_from.isoformat()}"
    if state.status is ItemStatus.MISSING:
        return f"{label} is missing"
    if state.status is ItemStatus.WITHDRAWN:
        return f"{label} was withdrawn"
    assert state.expires_on is not None
    return f"{label} expired on {state.expires_on.isoformat()}"


def _first_lapsed(states: Iterable[ItemState]) -> ItemState | None:
    return next((s for s in states if not s.status.in_force), None)


def person_standing(
    facts: PersonFacts,
    today: date,
    policy: StandingPolicy,
    *,
    rules: Iterable[str] = PERSON_RULES,
) -> Standing:
    """May this person work? Checks ``rules`` (a subset of PERSON_RULES) in PERSON_RULES order."""
    wanted = set(rules)
    training = record_states(facts.training, policy.required_training, today, policy.warning_days)
    org = organisation_state(facts, today, policy)
    items = training + ((org,) if org else ())
    if "sanctioned" in wanted:
        active = [s for s in facts.sanctions if s.active]
        if active:
            kind = "barred" if any(s.kind == "barred" for s in active) else "suspended"
            return Standing("sanctioned", f"the account is {kind} from the enclave", items)
    if "organisation_assurance" in wanted and org is not None and not org.status.in_force:
        label = f"the assurance of the organisation {org.item!r}"
        return Standing("organisation_assurance", _lapse(org, label), items)
    lapsed = _first_lapsed(training)
    if "training" in wanted and lapsed is not None:
        return Standing("training", _lapse(lapsed, f"the training {lapsed.item!r}"), items)
    version = policy.user_agreement_version
    if "user_agreement" in wanted and version and version not in facts.accepted_versions:
        reason = f"the user agreement version {version} has not been accepted"
        return Standing("user_agreement", reason, items)
    return Standing(items=items)


def project_standing(facts: ProjectFacts, today: date, policy: StandingPolicy) -> Standing:
    """May this project run sessions and release outputs?"""
    items = record_states(facts.records, policy.required_project_items, today, policy.warning_days)
    frozen = [f for f in facts.freezes if not f.ended]
    if frozen:
        scope = "the whole enclave is" if any(f.global_ for f in frozen) else "the project is"
        return Standing("frozen", f"{scope} frozen after an incident", items)
    lapsed = _first_lapsed(items)
    if lapsed is not None:
        label = f"the project's {PROJECT_KINDS.get(lapsed.item, lapsed.item)}"
        return Standing("compliance_lapsed", _lapse(lapsed, label), items)
    return Standing(items=items)
