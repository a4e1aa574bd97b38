"""The control plane API's contract (``contract.ApiContract``): its request-body schemas (also
used to validate requests), the service views its responses are made of, and its wording.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from enclave.control.rules import MEMBERSHIP_ROLES, PURPOSES, Role, Sensitivity
from enclave.control.views import (
    DatasetView,
    GrantView,
    MembershipView,
    PersonView,
    ProjectView,
)
from enclave.control.web.contract import ApiContract, json_object


def _text(max_length: int = 300) -> dict[str, Any]:
    return {"type": "string", "maxLength": max_length}


_DATE = {"type": "string", "format": "date", "examples": ["2027-06-30"]}
_REASON = {"type": "string", "minLength": 1, "maxLength": 500}


# Request bodies. Validated before the service is called (the service validates again, and
# its rules, such as purpose binding, are only there).
REQUEST_SCHEMAS: Mapping[str, dict[str, Any]] = {
    "PersonCreate": json_object(
        ["email", "name", "organisation"],
        email=_text(320),
        name=_text(200),
        organisation=_text(200),
        roles={"type": "array", "items": {"enum": [r.value for r in Role]}},
        username=_text(64),
    ),
    "AccreditationCreate": json_object(
        ["scheme", "reference", "issued_on", "expires_on"],
        scheme=_text(100),
        reference=_text(100),
        issued_on=_DATE,
        expires_on=_DATE,
    ),
    "ProjectCreate": json_object(
        [
            "slug",
            "title",
            "lay_summary",
            "public_benefit",
            "organisation",
            "purpose",
            "start_date",
            "end_date",
        ],
        slug=_text(64),
        title=_text(300),
        lay_summary=_text(10_000),
        public_benefit=_text(10_000),
        organisation=_text(200),
        purpose={"enum": list(PURPOSES)},
        start_date=_DATE,
        end_date=_DATE,
        legal_basis=_text(300),
        ethics_reference=_text(200),
        dsa_reference=_text(200),
        disclosure={
            "type": "object",
            "description": "checker parameter overrides; each may only tighten the default",
        },
    ),
    "Reason": json_object(["reason"], reason=_REASON),
    "MemberCreate": json_object(
        ["email", "role", "expires_on"],
        email=_text(320),
        role={"enum": sorted(MEMBERSHIP_ROLES)},
        expires_on=_DATE,
    ),
    "DatasetCreate": json_object(
        [
            "slug",
            "name",
            "source_agency",
            "description",
            "version",
            "custodian",
            "permitted_purposes",
            "variables",
        ],
        slug=_text(64),
        name=_text(200),
        source_agency=_text(200),
        description=_text(10_000),
        version={"type": "string", "description": "sha256 of the content (64 hex digits)"},
        custodian={"type": "string", "description": "email of a data custodian"},
        permitted_purposes={
            "type": "array",
            "minItems": 1,
            "items": {"enum": list(PURPOSES)},
        },
        variables={
            "type": "array",
            "minItems": 1,
            "items": json_object(
                ["name", "sensitivity"],
                name=_text(128),
                sensitivity={"enum": [s.value for s in Sensitivity]},
                description=_text(2000),
            ),
        },
    ),
    "GrantCreate": json_object(
        ["project", "dataset", "variables", "expires_on"],
        project=_text(64),
        dataset=_text(64),
        variables={"type": "array", "minItems": 1, "items": _text(128)},
        expires_on=_DATE,
    ),
}

# Response bodies: the service's frozen views, under their names less "View".
RESPONSE_VIEWS: tuple[type[Any], ...] = (
    PersonView,
    ProjectView,
    MembershipView,
    DatasetView,
    GrantView,
)

CONTRACT = ApiContract(
    title="Enclave control plane API",
    description="Provisioning of people, projects, datasets and grants. Every call but this "
    "document needs `Authorization: Bearer <token>` (`enclave admin issue-token`); the token's "
    "owner is the actor, and the control plane's rules decide what they may do.",
    request_schemas=REQUEST_SCHEMAS,
    response_views=RESPONSE_VIEWS,
    refusals={"403": "refused by a rule (message and rule code)"},
    fallback="bad input, not found or conflict",
)
