"""The OpenAPI document stays in sync with the API's routes: every route is documented with
its methods, nothing else is, every reference resolves, and the request schemas are valid
JSON Schemas that the API enforces."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator

from enclave.control.web.contract import openapi_path
from enclave.control.web.openapi import CONTRACT, REQUEST_SCHEMAS


def api_routes(app: Flask) -> set[tuple[str, str]]:
    return {
        (openapi_path(rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("api.")
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def test_document_lists_exactly_the_api_routes(app: Flask, client: FlaskClient) -> None:
    document = client.get("/api/openapi.json").json
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert documented == api_routes(app)
    assert document["openapi"].startswith("3.")
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            assert op["summary"] and op["responses"], (path, method)
            declared = {p["name"] for p in op["parameters"] if p["in"] == "path"}
            assert declared == {part[1:-1] for part in path.split("/") if part.startswith("{")}


def test_every_reference_resolves(client: FlaskClient) -> None:
    document = client.get("/api/openapi.json").json
    names = set(document["components"]["schemas"])
    found = set(refs(document))
    assert found, "the document uses references"
    for ref in found:
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in names, ref
    for schema in document["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


def test_an_undocumented_api_route_is_refused(app: Flask) -> None:
    app.add_url_rule("/api/extra", endpoint="api.extra", view_func=lambda: "x")
    with pytest.raises(LookupError, match="/api/extra"):
        CONTRACT.document(app)
    assert app.test_client().get("/api/extra").status_code == 401, "still needs a token"


@pytest.mark.parametrize("name", sorted(REQUEST_SCHEMAS))
def test_request_schemas_refuse_unknown_fields(name: str) -> None:
    validator = Draft202012Validator(REQUEST_SCHEMAS[name])
    assert not validator.is_valid({"unexpected": 1})
    assert json.dumps(REQUEST_SCHEMAS[name])  # plain JSON, servable as it is
