"""A JSON API's contract, shared by the control plane's API and the review queue's: request
schemas (which also validate request bodies), response schemas derived from the services'
view dataclasses, ``@operation`` metadata on each view, and the OpenAPI 3.1 document built
from the app's URL map.

Because the document is built from the URL map, a route cannot be served undocumented:
building it fails for an API view without ``@operation``.
"""

from __future__ import annotations

import enum
import re
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import date, datetime
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from flask import Flask, request
from jsonschema import Draft202012Validator

from enclave.control.errors import InvalidInput

OPERATION_ATTRIBUTE = "api_operation"
View = TypeVar("View", bound=Callable[..., Any])
Returns = type[Any] | dict[str, Any] | str | None

_PARAMETER = re.compile(r"<(?:(\w+):)?(\w+)>")
_ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_BINARY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
_TEXT = {"type": "string"}
_UUID = {"type": "string", "format": "uuid"}


def json_object(required: list[str], **properties: Any) -> dict[str, Any]:
    """A closed JSON object schema."""
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def openapi_path(rule: str) -> str:
    """A Flask rule as an OpenAPI path: ``/grants/<uuid:grant_id>`` -> ``/grants/{grant_id}``."""
    return _PARAMETER.sub(r"{\2}", rule)


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


@dataclass(frozen=True)
class Operation:
    """What the document says about one API view. ``returns``: a view dataclass, a JSON
    schema, ``"binary"`` (a file) or None (no content with status 204, any JSON otherwise).
    ``many``: a list, as ``{"items": [...]}`` (paged when ``query`` has ``page``). ``body``:
    a request schema's name."""

    summary: str
    returns: Returns
    many: bool = False
    body: str | None = None
    status: int = 200
    query: tuple[str, ...] = ()
    public: bool = False


@dataclass(frozen=True)
class ApiContract:
    """One API's schemas and wording. ``refusals``: the statuses a call with a token can be
    refused with, and what each means; ``fallback``: what the ``default`` response covers.
    ``multipart``: request schemas sent as forms; ``query_schemas``: the schema of a query
    parameter (text otherwise)."""

    title: str
    description: str
    request_schemas: Mapping[str, dict[str, Any]]
    response_views: tuple[type[Any], ...]
    refusals: Mapping[str, str]
    fallback: str
    multipart: frozenset[str] = frozenset()
    query_schemas: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    _validators: dict[str, Draft202012Validator] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def operation(
        self,
        summary: str,
        returns: Returns,
        *,
        many: bool = False,
        body: str | None = None,
        status: int = 200,
        query: tuple[str, ...] = (),
        public: bool = False,
    ) -> Callable[[View], View]:
        """Attach OpenAPI metadata to an API view (the document refuses a view without)."""
        if body is not None and body not in self.request_schemas:
            raise KeyError(f"unknown request schema {body!r}")
        meta = Operation(summary, returns, many, body, status, query, public)

        def mark(view: View) -> View:
            setattr(view, OPERATION_ATTRIBUTE, meta)
            return view

        return mark

    def validator(self, schema: str) -> Draft202012Validator:
        """A JSON Schema validator for the JSON request body ``schema``."""
        if schema not in self._validators:
            self._validators[schema] = Draft202012Validator(self.request_schemas[schema])
        return self._validators[schema]

    def body(self, schema: str) -> dict[str, Any]:
        """The current request's JSON object, valid against ``schema``; InvalidInput naming
        the first problem (``invalid_body``) otherwise."""
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise InvalidInput(
                "the request body must be a JSON object (Content-Type: application/json)",
                rule="invalid_body",
            )
        problems = sorted(
            self.validator(schema).iter_errors(data), key=lambda e: list(e.absolute_path)
        )
        if problems:
            where = "/".join(str(part) for part in problems[0].absolute_path) or "body"
            raise InvalidInput(f"{where}: {problems[0].message}", rule="invalid_body")
        return data

    def _success(self, meta: Operation) -> dict[str, Any]:
        if meta.returns is None:
            if meta.status == 204:
                return {"description": "done (no content)"}
            return {"description": "OK", "content": {"application/json": {"schema": {}}}}
        if meta.returns == "binary":
            return {"description": "the file", "content": _BINARY}
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
                    page=self.query_schemas["page"],
                    limit=self.query_schemas["limit"],
                    next_page={"type": ["integer", "null"]},
                )
                schema["required"] = ["items", "page", "limit", "next_page"]
        return {"description": "OK", "content": {"application/json": {"schema": schema}}}

    def _operation_object(self, meta: Operation, rule: str, endpoint: str) -> dict[str, Any]:
        parameters = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": _UUID if kind == "uuid" else _TEXT,
            }
            for kind, name in _PARAMETER.findall(rule)
        ] + [
            {"name": name, "in": "query", "schema": self.query_schemas.get(name, _TEXT)}
            for name in meta.query
        ]
        responses: dict[str, Any] = {str(meta.status): self._success(meta)}
        if not meta.public:
            responses["401"] = {"description": "no, unknown, expired or revoked token", **_ERROR}
            for status, meaning in self.refusals.items():
                responses[status] = {"description": meaning, **_ERROR}
        responses["default"] = {"description": self.fallback, **_ERROR}
        out: dict[str, Any] = {
            "operationId": endpoint.split(".", 1)[1],
            "summary": meta.summary,
            "parameters": parameters,
            "responses": responses,
        }
        if meta.body:
            media = "multipart/form-data" if meta.body in self.multipart else "application/json"
            schema = {"$ref": f"#/components/schemas/{meta.body}"}
            out["requestBody"] = {"required": True, "content": {media: {"schema": schema}}}
        if meta.public:
            out["security"] = []
        return out

    def document(self, app: Flask, blueprint: str = "api") -> dict[str, Any]:
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
                paths.setdefault(openapi_path(rule.rule), {})[method.lower()] = (
                    self._operation_object(meta, rule.rule, rule.endpoint)
                )
        schemas: dict[str, Any] = {
            **view_schemas(self.response_views),
            **self.request_schemas,
            "Error": {
                "type": "object",
                "properties": {"error": {"type": "string"}, "rule": {"type": "string"}},
                "required": ["error", "rule"],
            },
        }
        return {
            "openapi": "3.1.0",
            "info": {"title": self.title, "version": "1", "description": self.description},
            "paths": dict(sorted(paths.items())),
            "components": {
                "schemas": dict(sorted(schemas.items())),
                "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            },
            "security": [{"bearer": []}],
        }
