"""The queue API's contract: request schemas (JSON and multipart; JSON ones also validate
requests), response schemas derived from the service's views (with the control plane's
``view_schemas``), and the OpenAPI 3.1 document built from the app's ``api`` routes and the
``@operation`` metadata on each view, so no route can be served undocumented.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, TypeVar

from flask import Flask
from jsonschema import Draft202012Validator

from enclave.control.web.openapi import openapi_path, schema_name, view_schemas
from output_checker.queue.views import (
    ActivityEntry,
    CommentView,
    FileView,
    GroupView,
    ReleaseView,
    RequestDetail,
    RequestSummary,
    VoteView,
)
from output_checker.queue.web.paging import QUERY_SCHEMAS

OPERATION_ATTRIBUTE = "queue_operation"
View = TypeVar("View", bound=Callable[..., Any])
Body = Literal["json", "multipart"]


def _text(max_length: int, min_length: int = 0) -> dict[str, Any]:
    return {"type": "string", "maxLength": max_length, "minLength": min_length}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


_COMMENT = _text(20_000)
_GROUP = {"type": "string", "maxLength": 100, "examples": ["tables"]}
_KIND = {"enum": ["output", "supporting"]}
_JSON_PART = {
    "type": "string",
    "description": "a JSON object (a text field or a file part)",
}

# Request bodies. JSON ones are validated before the service is called (which validates
# again, and alone knows the rules); multipart ones describe the upload form.
REQUEST_SCHEMAS: Mapping[str, dict[str, Any]] = {
    "RequestCreate": _object(
        ["project"], project={"type": "string", "maxLength": 64}, title=_text(200)
    ),
    "GroupSet": _object(
        ["name", "context", "controls"],
        name=_GROUP,
        context=_text(10_000, 1),
        controls=_text(10_000, 1),
    ),
    "FileMove": _object([], group=_GROUP, kind=_KIND),
    "ExceptionText": _object(["text"], text=_text(5_000)),
    "CommentCreate": _object(
        ["body"],
        body=_text(20_000, 1),
        group=_GROUP,
        file_id={"type": "string", "format": "uuid"},
        visibility={"enum": ["public", "private"]},
    ),
    "VoteCast": _object(
        ["choice"], choice={"enum": ["approve", "request_changes"]}, comment=_COMMENT
    ),
    "OptionalComment": _object([], comment=_COMMENT),
    "ReleaseComment": _object(["comment"], comment=_text(20_000, 1)),
    "Reason": _object(["reason"], reason=_text(20_000, 1)),
    "FileUpload": {
        "type": "object",
        "properties": {
            "file": {"type": "string", "format": "binary"},
            "name": {"type": "string", "maxLength": 200},
            "kind": _KIND,
            "group": _GROUP,
            "record": _JSON_PART,
            "recipe": _JSON_PART,
            "exception": _text(5_000),
        },
        "required": ["file"],
    },
    "FileUpdate": {
        "type": "object",
        "properties": {
            "file": {"type": "string", "format": "binary"},
            "record": _JSON_PART,
            "recipe": _JSON_PART,
        },
        "required": ["file"],
    },
}
MULTIPART = frozenset({"FileUpload", "FileUpdate"})

RESPONSE_VIEWS: tuple[type[Any], ...] = (
    RequestSummary,
    RequestDetail,
    FileView,
    GroupView,
    VoteView,
    CommentView,
    ReleaseView,
    ActivityEntry,
)
# Responses that are not a view: a file's bytes, and the checkers' open reviews.
BINARY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
LOAD = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}


@dataclass(frozen=True)
class Operation:
    """What the document says about one API view. ``returns`` is a view dataclass, a JSON
    schema, ``"binary"`` (a file) or None (204, no content)."""

    summary: str
    returns: type[Any] | dict[str, Any] | str | None
    many: bool = False
    body: str | None = None
    status: int = 200
    query: tuple[str, ...] = ()
    public: bool = False


def operation(
    summary: str,
    returns: type[Any] | dict[str, Any] | str | None,
    *,
    many: bool = False,
    body: str | None = None,
    status: int = 200,
    query: tuple[str, ...] = (),
    public: bool = False,
) -> Callable[[View], View]:
    """Attach OpenAPI metadata to an API view (the document refuses a view without)."""
    if body is not None and body not in REQUEST_SCHEMAS:
        raise KeyError(f"unknown request schema {body!r}")
    meta = Operation(summary, returns, many, body, status, query, public)

    def mark(view: View) -> View:
        setattr(view, OPERATION_ATTRIBUTE, meta)
        return view

    return mark


@cache
def validator(schema: str) -> Draft202012Validator:
    """A JSON Schema validator for the JSON request body ``schema``."""
    return Draft202012Validator(REQUEST_SCHEMAS[schema])


def _success(meta: Operation) -> dict[str, Any]:
    if meta.returns is None:
        return {"description": "done (no content)"}
    if meta.returns == "binary":
        return {"description": "the file", "content": BINARY}
    if isinstance(meta.returns, dict):
        schema: dict[str, Any] = meta.returns
    else:
        assert isinstance(meta.returns, type)
        schema = {"$ref": f"#/components/schemas/{schema_name(meta.returns)}"}
    if meta.many:
        schema = {
            "type": "object",
            "properties": {"items": {"type": "array", "items": schema}},
            "required": ["items"],
        }
        if "page" in meta.query:  # a paged list says where it is and what follows
            schema["properties"].update(
                page=QUERY_SCHEMAS["page"],
                limit=QUERY_SCHEMAS["limit"],
                next_page={"type": ["integer", "null"]},
            )
            schema["required"] = ["items", "page", "limit", "next_page"]
    return {"description": "OK", "content": {"application/json": {"schema": schema}}}


_ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_PARAMETER = re.compile(r"<(?:(\w+):)?(\w+)>")


def _operation_object(meta: Operation, rule: str, endpoint: str) -> dict[str, Any]:
    uuid, text = {"type": "string", "format": "uuid"}, {"type": "string"}
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": uuid if kind == "uuid" else text}
        for kind, name in _PARAMETER.findall(rule)
    ] + [
        {"name": name, "in": "query", "schema": QUERY_SCHEMAS.get(name, text)}
        for name in meta.query
    ]
    responses: dict[str, Any] = {str(meta.status): _success(meta)}
    if not meta.public:
        responses["401"] = {"description": "no, unknown, expired or revoked token", **_ERROR}
        responses["403"] = {"description": "refused by the person's role", **_ERROR}
        responses["409"] = {"description": "refused by the request's state", **_ERROR}
    responses["default"] = {"description": "bad input or not found", **_ERROR}
    out: dict[str, Any] = {
        "operationId": endpoint.split(".", 1)[1],
        "summary": meta.summary,
        "parameters": parameters,
        "responses": responses,
    }
    if meta.body:
        media = "multipart/form-data" if meta.body in MULTIPART else "application/json"
        schema = {"$ref": f"#/components/schemas/{meta.body}"}
        out["requestBody"] = {"required": True, "content": {media: {"schema": schema}}}
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
            "title": "Output review queue API",
            "version": "1",
            "description": "Everything the review queue's pages do, as JSON. Every call but "
            "this document needs `Authorization: Bearer <token>` (a control-plane token, "
            "`enclave admin issue-token`); the token's owner is the actor, and the queue's "
            "rules decide what they may do and see (blinding included).",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
