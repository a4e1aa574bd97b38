"""The governance rules as data: vocabularies, who may do what, and in which project states.

Pure: no database, no I/O. The service layer calls ``check_role`` and ``check_state`` before it
changes anything; faces call ``can`` to decide which buttons to show. Changing who may do what
means editing ``PERMISSIONS`` or ``ALLOWED_STATES`` here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from types import MappingProxyType

from enclave.control.errors import PermissionDenied


class Role(StrEnum):
    """A person's standing roles (a project membership also has a role, see MEMBERSHIP_ROLES)."""

    RESEARCHER = "researcher"
    OUTPUT_CHECKER = "output_checker"
    DATA_CUSTODIAN = "data_custodian"
    ADMIN = "admin"
    DATALAB_CLIENT = "datalab_client"


class ProjectState(StrEnum):
    PROPOSED = "proposed"
    APPROVED = "approved"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"
    REJECTED = "rejected"  # a proposal turned down: never public, never reopened


class Sensitivity(StrEnum):
    DIRECT_IDENTIFIER = "direct_identifier"
    QUASI_IDENTIFIER = "quasi_identifier"
    SENSITIVE = "sensitive"
    OTHER = "other"


class GrantState(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    REVOKED = "revoked"


# Roles whose holders must prove a second factor (TOTP) to log in and to get an API token, and
# whose tokens are short-lived (SATRE 3.2.04): they can change, release or grant access to data.
PRIVILEGED_ROLES: frozenset[Role] = frozenset(
    {Role.ADMIN, Role.OUTPUT_CHECKER, Role.DATA_CUSTODIAN}
)

# Roles a person may hold within one project; each needs the matching standing role.
MEMBERSHIP_ROLES: frozenset[Role] = frozenset(
    {Role.RESEARCHER, Role.OUTPUT_CHECKER, Role.DATALAB_CLIENT}
)

# Purpose categories a project declares and a dataset permits. Enforcement, immigration control
# and other uses against the data subjects are deliberately absent: no project can declare them.
PURPOSES: Mapping[str, str] = MappingProxyType(
    {
        "health_research": "research into health, care and their determinants",
        "social_research": "research into society, families, housing and communities",
        "education_research": "research into education and skills",
        "economic_research": "research into work, income and the economy",
        "policy_evaluation": "evaluation of a public policy or programme",
        "service_planning": "planning of public services (aggregate statistics only)",
        "official_statistics": "production of official statistics",
    }
)

# States from which no transition leads anywhere.
FINAL_STATES: frozenset[ProjectState] = frozenset({ProjectState.CLOSED, ProjectState.REJECTED})


class Action(StrEnum):
    """Everything a person can ask the control plane to do; also the audit event names."""

    CREATE_PERSON = "create_person"
    SET_ROLES = "set_roles"
    ACCREDIT = "accredit"
    SET_CREDENTIALS = "set_credentials"  # another person's password or TOTP
    ISSUE_TOKEN = "issue_token"
    REVOKE_TOKEN = "revoke_token"
    LIST_PEOPLE = "list_people"
    CREATE_PROJECT = "create_project"
    APPROVE_PROJECT = "approve_project"
    REJECT_PROJECT = "reject_project"
    ACTIVATE_PROJECT = "activate_project"
    SUSPEND_PROJECT = "suspend_project"
    CLOSE_PROJECT = "close_project"
    SET_DISCLOSURE = "set_disclosure"
    SET_LIMITS = "set_limits"
    LIST_PROJECTS = "list_projects"
    ADD_MEMBER = "add_member"
    REMOVE_MEMBER = "remove_member"
    REGISTER_DATASET = "register_dataset"
    LIST_DATASETS = "list_datasets"
    REQUEST_GRANT = "request_grant"
    APPROVE_GRANT = "approve_grant"
    REJECT_GRANT = "reject_grant"
    REVOKE_GRANT = "revoke_grant"
    LIST_GRANTS = "list_grants"
    START_SESSION = "start_session"
    RELEASE_OUTPUT = "release_output"
    VIEW_AUDIT = "view_audit"
    # governed close (SATRE 1.4.04, 3.1.10), see certificates.py
    VIEW_CERTIFICATE = "view_certificate"
    # data ingress with custodian approval (SATRE 3.1.04), see service/ingress.py
    SUBMIT_DATASET_VERSION = "submit_dataset_version"
    DECIDE_DATASET_VERSION = "decide_dataset_version"
    LIST_DATASET_VERSIONS = "list_dataset_versions"
    USE_DATASET_VERSION = "use_dataset_version"
    # custodian egress rights (SATRE 3.1.06), see service/egress.py
    SET_EGRESS_POLICY = "set_egress_policy"
    SET_MICRODATA_POLICY = "set_microdata_policy"
    ADD_DELEGATE = "add_delegate"
    REMOVE_DELEGATE = "remove_delegate"
    GRANT_EGRESS_RIGHT = "grant_egress_right"
    REVOKE_EGRESS_RIGHT = "revoke_egress_right"
    # compliance that expires, organisation assurance, user agreement, see service/compliance.py
    RECORD_COMPLIANCE = "record_compliance"
    RECORD_ORGANISATION = "record_organisation"
    ACCEPT_AGREEMENT = "accept_agreement"
    COMPLIANCE_REPORT = "compliance_report"
    # breach handling (SATRE 2.6.04, 1.2.09), see service/incidents.py
    SUSPEND_PERSON = "suspend_person"
    BAR_PERSON = "bar_person"
    LIFT_SANCTION = "lift_sanction"
    LODGE_APPEAL = "lodge_appeal"  # the sanctioned person may always appeal their own
    DECIDE_APPEAL = "decide_appeal"
    FREEZE = "freeze"
    UNFREEZE = "unfreeze"
    # security-log alerts and their review (SATRE 2.5.03), see service/alerts.py
    SCAN_ALERTS = "scan_alerts"
    LIST_ALERTS = "list_alerts"
    REVIEW_ALERT = "review_alert"
    # usage data for admins and charging (SATRE 2.2.13-15, 4.4.02), see service/usage.py
    VIEW_USAGE = "view_usage"
    # software ingress: reviewed package requests (SATRE 2.1.12-13), see service/packages.py
    REQUEST_PACKAGE = "request_package"
    DECIDE_PACKAGE = "decide_package"
    LIST_PACKAGES = "list_packages"
    # changes of principal investigator or custodian, flagged for review (SATRE 1.4.01-02)
    SET_PROJECT_PI = "set_project_pi"
    TRANSFER_CUSTODY = "transfer_custody"


_ADMIN = frozenset({Role.ADMIN})
_CUSTODIAN = frozenset({Role.DATA_CUSTODIAN})
_SIGNERS = frozenset({Role.DATA_CUSTODIAN, Role.OUTPUT_CHECKER})  # custodians and delegates

# Role x action: which standing roles may attempt each action. Everything absent is refused.
PERMISSIONS: Mapping[Action, frozenset[Role]] = MappingProxyType(
    {
        # breach handling and security alerts: admins only
        Action.SUSPEND_PERSON: _ADMIN,
        Action.BAR_PERSON: _ADMIN,
        Action.LIFT_SANCTION: _ADMIN,
        Action.LODGE_APPEAL: _ADMIN,
        Action.DECIDE_APPEAL: _ADMIN,
        Action.FREEZE: _ADMIN,
        Action.UNFREEZE: _ADMIN,
        Action.SCAN_ALERTS: _ADMIN,
        Action.LIST_ALERTS: _ADMIN,
        Action.REVIEW_ALERT: _ADMIN,
        Action.VIEW_USAGE: _ADMIN,
        Action.CREATE_PERSON: _ADMIN,
        Action.SET_ROLES: _ADMIN,
        Action.ACCREDIT: _ADMIN,
        Action.SET_CREDENTIALS: _ADMIN,
        Action.ISSUE_TOKEN: _ADMIN,
        Action.REVOKE_TOKEN: _ADMIN,
        Action.LIST_PEOPLE: _ADMIN,
        Action.CREATE_PROJECT: _ADMIN,
        Action.APPROVE_PROJECT: _ADMIN,
        Action.REJECT_PROJECT: _ADMIN,
        Action.ACTIVATE_PROJECT: _ADMIN,
        Action.SUSPEND_PROJECT: _ADMIN,
        Action.CLOSE_PROJECT: _ADMIN,
        Action.SET_DISCLOSURE: _ADMIN,
        Action.SET_LIMITS: _ADMIN,
        Action.LIST_PROJECTS: frozenset({Role.ADMIN, Role.DATA_CUSTODIAN, Role.OUTPUT_CHECKER}),
        Action.ADD_MEMBER: _ADMIN,
        Action.REMOVE_MEMBER: _ADMIN,
        Action.REGISTER_DATASET: frozenset({Role.ADMIN, Role.DATA_CUSTODIAN}),
        Action.LIST_DATASETS: frozenset({Role.ADMIN, Role.DATA_CUSTODIAN, Role.RESEARCHER}),
        Action.REQUEST_GRANT: _ADMIN,
        Action.APPROVE_GRANT: _CUSTODIAN,
        Action.REJECT_GRANT: _CUSTODIAN,
        Action.REVOKE_GRANT: frozenset({Role.ADMIN, Role.DATA_CUSTODIAN}),
        Action.LIST_GRANTS: frozenset({Role.ADMIN, Role.DATA_CUSTODIAN}),
        Action.START_SESSION: frozenset({Role.RESEARCHER}),
        Action.RELEASE_OUTPUT: frozenset({Role.OUTPUT_CHECKER}),
        Action.VIEW_AUDIT: _ADMIN,
        # Custodians see the proof of deletion of projects that held their data.
        Action.VIEW_CERTIFICATE: frozenset({Role.ADMIN, Role.DATA_CUSTODIAN}),
        # A version is submitted by its dataset's custodian or an admin, and approved only by
        # its dataset's custodian (the service checks which dataset is whose).
        Action.SUBMIT_DATASET_VERSION: frozenset({Role.ADMIN, Role.DATA_CUSTODIAN}),
        Action.DECIDE_DATASET_VERSION: _CUSTODIAN,
        Action.LIST_DATASET_VERSIONS: frozenset({Role.ADMIN, Role.DATA_CUSTODIAN}),
        Action.USE_DATASET_VERSION: _ADMIN,  # the linkage unit's operator
        # The dataset's custodian (or, for the policy, an admin); delegates hold one of the
        # two roles of _SIGNERS. Which dataset is theirs is the service's check.
        Action.SET_EGRESS_POLICY: frozenset({Role.ADMIN, Role.DATA_CUSTODIAN}),
        Action.SET_MICRODATA_POLICY: frozenset({Role.ADMIN, Role.DATA_CUSTODIAN}),
        Action.ADD_DELEGATE: _CUSTODIAN,
        Action.REMOVE_DELEGATE: _CUSTODIAN,
        Action.GRANT_EGRESS_RIGHT: _SIGNERS,
        Action.REVOKE_EGRESS_RIGHT: _SIGNERS,
        Action.RECORD_COMPLIANCE: _ADMIN,
        Action.RECORD_ORGANISATION: _ADMIN,
        # each person for themselves, whatever their role
        Action.ACCEPT_AGREEMENT: frozenset(Role),
        Action.COMPLIANCE_REPORT: _ADMIN,
        # a project's researcher asks; an admin (never the requester) decides; researchers
        # see the requests of their own projects
        Action.REQUEST_PACKAGE: frozenset({Role.RESEARCHER}),
        Action.DECIDE_PACKAGE: _ADMIN,
        Action.LIST_PACKAGES: frozenset({Role.ADMIN, Role.RESEARCHER}),
        Action.SET_PROJECT_PI: _ADMIN,
        Action.TRANSFER_CUSTODY: _ADMIN,
    }
)

_P, _AP, _AC, _S = (
    ProjectState.PROPOSED,
    ProjectState.APPROVED,
    ProjectState.ACTIVE,
    ProjectState.SUSPENDED,
)

# Action x project state: the states in which a project-scoped action is allowed at all.
ALLOWED_STATES: Mapping[Action, frozenset[ProjectState]] = MappingProxyType(
    {
        Action.APPROVE_PROJECT: frozenset({_P}),
        Action.REJECT_PROJECT: frozenset({_P}),
        Action.ACTIVATE_PROJECT: frozenset({_AP, _S}),
        Action.SUSPEND_PROJECT: frozenset({_AP, _AC}),
        Action.CLOSE_PROJECT: frozenset({_AP, _AC, _S}),
        Action.SET_DISCLOSURE: frozenset({_P, _AP, _AC, _S}),
        Action.SET_LIMITS: frozenset({_P, _AP, _AC, _S}),
        Action.ADD_MEMBER: frozenset({_P, _AP, _AC}),
        Action.REMOVE_MEMBER: frozenset({_P, _AP, _AC, _S}),
        Action.REQUEST_GRANT: frozenset({_AP, _AC}),
        Action.APPROVE_GRANT: frozenset({_AP, _AC}),
        Action.REJECT_GRANT: frozenset({_AP, _AC, _S}),
        Action.REVOKE_GRANT: frozenset({_AP, _AC, _S}),
        Action.START_SESSION: frozenset({_AC}),
        Action.RELEASE_OUTPUT: frozenset({_AC}),
        # Revoking an egress right is allowed in every state: it only ever takes rights away.
        Action.GRANT_EGRESS_RIGHT: frozenset({_AP, _AC}),
        Action.REQUEST_PACKAGE: frozenset({_AP, _AC}),
    }
)

# The project state machine: each transition action and the state it leads to. The states it
# may start from are ALLOWED_STATES[action].
TRANSITIONS: Mapping[Action, ProjectState] = MappingProxyType(
    {
        Action.APPROVE_PROJECT: ProjectState.APPROVED,
        Action.REJECT_PROJECT: ProjectState.REJECTED,
        Action.ACTIVATE_PROJECT: ProjectState.ACTIVE,
        Action.SUSPEND_PROJECT: ProjectState.SUSPENDED,
        Action.CLOSE_PROJECT: ProjectState.CLOSED,
    }
)

# States whose projects appear in the public transparency register.
REGISTER_STATES: frozenset[ProjectState] = frozenset({_AP, _AC, _S, ProjectState.CLOSED})


def check_role(roles: Iterable[str], action: Action) -> None:
    """Raise PermissionDenied (rule ``role``) unless one of ``roles`` may attempt ``action``."""
    allowed = PERMISSIONS.get(action, frozenset())
    if not allowed.intersection(roles):
        needed = " or ".join(sorted(allowed)) or "nobody"
        raise PermissionDenied(f"{action.value} requires the role {needed}", rule="role")


def check_state(action: Action, state: str) -> None:
    """Raise PermissionDenied (rule ``project_state``) if ``action`` is not allowed in ``state``."""
    allowed = ALLOWED_STATES.get(action)
    if allowed is not None and state not in allowed:
        raise PermissionDenied(
            f"{action.value} is not allowed while the project is {state}", rule="project_state"
        )


def can(roles: Iterable[str], action: Action, state: str | None = None) -> bool:
    """Whether ``roles`` may do ``action`` (in ``state``, for project-scoped actions)."""
    try:
        check_role(roles, action)
        if state is not None:
            check_state(action, state)
    except PermissionDenied:
        return False
    return True


def transitions_from(state: ProjectState) -> dict[Action, ProjectState]:
    """The transition actions available from ``state`` and where each leads."""
    return {a: to for a, to in TRANSITIONS.items() if state in ALLOWED_STATES[a]}
