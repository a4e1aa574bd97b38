"""The JSON API's contract: request-body schemas (also used to validate requests), response
schemas derived from the service's view dataclasses, and the OpenAPI 3.1 document built from
the app's routes and the ``@operation`` metadata on each API view.

Because the document is built from the URL map, a route cannot be served undocumented: building
it fails for an API view without ``@operation`` (a test builds it), and the test also checks
that its paths are exactly the API's routes.
"""

from __future__ import annotations

import enum
import re
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, is_dataclass
from datetime import date, datetime
from functools import cache
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from flask import Flask
from jsonschema import Draft202012Validator

from enclave.control.rules import MEMBERSHIP_ROLES, PURPOSES, Role, Sensitivity
from enclave.control.views import (
    DatasetView,
    GrantView,
    MembershipView,
    PersonView,
    ProjectView,
)

OPERATION_ATTRIBUTE = "enclave_operation"
View = TypeVar("View", bound=Callable[..., Any])


def _text(max_length: int = 300) -> dict[str, Any]:
    return {"type": "string", "maxLength": max_length}


_DATE = {"type": "string", "format": "date", "examples": ["2027-06-30"]}
_REASON = {"type": "string", "minLength": 1, "maxLength": 500}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


# Request bodies. Validated before the service is called (the service validates again, and
# its rules, such as purpose binding, are only there).
REQUEST_SCHEMAS: Mapping[str, dict[str, Any]] = {
    "PersonCreate": _object(
        ["email", "name", "organisation"],
        email=_text(320),
        name=_text(200),
        organisation=_text(200),
        roles={"type": "array", "items": {"enum": [r.value for r in Role]}},
        username=_text(64),
    ),
    "AccreditationCreate": _object(
        ["scheme", "reference", "issued_on", "expires_on"],
        scheme=_text(100),
        reference=_text(100),
        issued_on=_DATE,
        expires_on=_DATE,
    ),
    "ProjectCreate": _object(
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
    "Reason": _object(["reason"], reason=_REASON),
    "MemberCreate": _object(
        ["email", "role", "expires_on"],
        email=_text(320),
        role={"enum": sorted(MEMBERSHIP_ROLES)},
        expires_on=_DATE,
    ),
    "DatasetCreate": _object(
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
            "items": _object(
                ["name", "sensitivity"],
                name=_text(128),
                sensitivity={"enum": [s.value for s in Sensitivity]},
                description=_text(2000),
            ),
        },
    ),
    "GrantCreate": _object(
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


@dataclass(frozen=True)
class Operation:
    """What the document says about one API view."""

    summary: str
    returns: type[Any] | None  # a view dataclass
    many: bool = False  # a list, as {"items": [...]}
    body: str | None = None  # a REQUEST_SCHEMAS name
    status: int = 200
    query: tuple[str, ...] = ()
    public: bool = False


def operation(
    summary: str,
    returns: type[Any] | None,
    *,
    many: bool = False,
    body: str | None = None,
    status: int = 200,
    query: tuple[str, ...] = (),
    public: bool = False,
) -> Callable[[View], View]:
    """Attach OpenAPI metadata to an API view (required: the document refuses a view without)."""
    if body is not None and body not in REQUEST_SCHEMAS:
        raise KeyError(f"unknown request schema {body!r}")
    meta = Operation(summary, returns, many, body, status, query, public)

    def mark(view: View) -> View:
        setattr(view, OPERATION_ATTRIBUTE, meta)
        return view

    return mark


@cache
def validator(schema: str) -> Draft202012Validator:
    """A JSON Schema validator for the request body ``schema``."""
    return Draft202012Validator(REQUEST_SCHEMAS[schema])


def schema_name(view: type[Any]) -> str:
    """``PersonView`` -> ``Person``."""
    return view.__name__.removesuffix("View")


def type_schema(annotation: Any) -> dict[str, Any]:
    """The JSON Schema of a view field's type (as serialised by ``jsonview.plain``)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        (inner,) = [a for a in args if a is not type(None)]
        return {"anyOf": [type_schema(inner), {"type": "null"}]}
    if origin is tuple or origin is frozenset:
        return {"type": "array", "items": type_schema(args[0])}
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return {"enum": [member.value for member in annotation]}
    if origin is dict:
        return {"type": "object"}
    if is_dataclass(annotation):
        return {"$ref": f"#/components/schemas/{schema_name(annotation)}"}  # type: ignore[arg-type]
    simple: list[tuple[type[Any], dict[str, Any]]] = [
        (bool, {"type": "boolean"}),
        (int, {"type": "integer"}),
        (str, {"type": "string"}),
        (datetime, {"type": "string", "format": "date-time"}),
        (date, {"type": "string", "format": "date"}),
    ]
    for kind, schema in simple:
        if annotation is kind:
            return schema
    raise TypeError(f"no JSON schema for {annotation!r}")


def view_schemas(roots: tuple[type[Any], ...]) -> dict[str, dict[str, Any]]:
    """Object schemas of ``roots`` and of every dataclass nested in them."""
    out: dict[str, dict[str, Any]] = {}
    pending = list(roots)
    while pending:
        view = pending.pop()
        hints = get_type_hints(view)
        properties = {f.name: type_schema(hints[f.name]) for f in fields(view)}
        out[schema_name(view)] = {
            "type": "object",
            "properties": properties,
            "required": [f.name for f in fields(view)],
        }
        for f in fields(view):
            for nested in (hints[f.name], *get_args(hints[f.name])):
                if is_dataclass(nested) and schema_name(nested) not in out:  # type: ignore[arg-type]
                    pending.append(nested)  # type: ignore[arg-type]
    return out


def _response(meta: Operation) -> dict[str, Any]:
    if meta.returns is None:
        return {"description": "OK", "content": {"application/json": {"schema": {}}}}
    ref = {"$ref": f"#/components/schemas/{schema_name(meta.returns)}"}
    schema = (
        {
            "type": "object",
            "properties": {"items": {"type": "array", "items": ref}},
            "required": ["items"],
        }
        if meta.many
        else ref
    )
    return {"description": "OK", "content": {"application/json": {"schema": schema}}}


_ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_PARAMETER = re.compile(r"<(?:(\w+):)?(\w+)>")


def openapi_path(rule: str) -> str:
    """A Flask rule as an OpenAPI path: ``/grants/<uuid:grant_id>`` -> ``/grants/{grant_id}``."""
    return _PARAMETER.sub(r"{\2}", rule)


def _operation_object(meta: Operation, rule: str, endpoint: str) -> dict[str, Any]:
    parameters = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "format": "uuid"}
            if kind == "uuid"
            else {"type": "string"},
        }
        for kind, name in _PARAMETER.findall(rule)
    ] + [{"name": name, "in": "query", "schema": {"type": "string"}} for name in meta.query]
    responses: dict[str, Any] = {str(meta.status): _response(meta)}
    if not meta.public:
        responses["401"] = {"description": "no, unknown, expired or revoked token", **_ERROR}
        responses["403"] = {"description": "refused by a rule (message and rule code)", **_ERROR}
    responses["default"] = {"description": "bad input, not found or conflict", **_ERROR}
    out: dict[str, Any] = {
        "operationId": endpoint.split(".", 1)[1],
        "summary": meta.summary,
        "parameters": parameters,
        "responses": responses,
    }
    if meta.body:
        schema = {"$ref": f"#/components/schemas/{meta.body}"}
        out["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    if meta.public:
        out["security"] = []
    return out


def build_document(app: Flask, blueprint: str = "api") -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route of ``blueprint``; raises LookupError for a
    route whose view lacks ``@operation``."""
    paths: dict[str, dict[str, Any]] = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] != blueprint:
            continue
        meta = getattr(app.view_functions[rule.endpoint], OPERATION_ATTRIBUTE, None)
        if meta is None:
            raise LookupError(f"API route {rule.rule} has no @operation documentation")
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.setdefault(openapi_path(rule.rule), {})[method.lower()] = _operation_object(
                meta, rule.rule, rule.endpoint
            )
    schemas: dict[str, Any] = {
        **view_schemas(RESPONSE_VIEWS),
        **REQUEST_SCHEMAS,
        "Error": {
            "type": "object",
            "properties": {"error": {"type": "string"}, "rule": {"type": "string"}},
            "required": ["error", "rule"],
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Enclave control plane API",
            "version": "1",
            "description": "Provisioning of people, projects, datasets and grants. Every call "
            "but this document needs `Authorization: Bearer <token>` (`enclave admin "
            "issue-token`); the token's owner is the actor, and the control plane's rules "
            "decide what they may do.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
