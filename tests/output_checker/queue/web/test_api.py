"""The JSON API: the whole journey with bearer tokens (on every database backend), its errors
(401, 403, 404, 409 with ``{"error", "rule"}``), and its OpenAPI document, built from the
routes and checked against them and against real responses."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator

from enclave.control.context import Context
from output_checker.queue import release, service
from output_checker.queue.storage import BlobStore
from tests.enclave.control.dbfixtures import BACKENDS
from tests.output_checker.queue.factories import (
    QueueWorld,
    distinct,
    failing_beside_passing,
    passing_output,
)

Bearer = Callable[[str], dict[str, str]]


def _document(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json  # type: ignore[assignment]
    return document


def _conforms(document: dict[str, Any], path: str, method: str, status: int, body: Any) -> None:
    """``body`` is valid against the document's schema for that operation and status."""
    responses = document["paths"][path][method]["responses"]
    spec = responses.get(str(status)) or responses["default"]
    schema = spec["content"]["application/json"]["schema"]
    # The document's components at the root, so "#/components/..." references resolve.
    root = {"components": document["components"], "allOf": [schema]}
    errors = list(Draft202012Validator(root).iter_errors(body))
    assert not errors, (path, method, status, errors[0].message)


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
def test_the_whole_journey_through_the_api(
    ctx: Context, qw: QueueWorld, client: FlaskClient, bearer: Bearer
) -> None:
    doc = _document(client)
    author, a, b = bearer(qw.author), bearer(qw.checker_a), bearer(qw.checker_b)
    made = client.post(
        "/api/v1/requests", json={"project": "study", "title": "Beds"}, headers=author
    )
    assert made.status_code == 201, made.json
    _conforms(doc, "/api/v1/requests", "post", 201, made.json)
    rid = made.json["id"]  # type: ignore[index]
    outputs = {}
    for output in (distinct(passing_output(qw)), distinct(failing_beside_passing(qw))):
        form = {
            "file": (io.BytesIO(output.data), output.name),
            "group": "tables",
            "record": json.dumps(output.record),
            "recipe": (io.BytesIO(json.dumps(output.recipe).encode()), "recipe.json"),
        }
        added = client.post(f"/api/v1/requests/{rid}/files", data=form, headers=author)
        assert added.status_code == 201, added.json
        _conforms(doc, "/api/v1/requests/{request_id}/files", "post", 201, added.json)
        outputs[output.name] = (added.json["id"], output.data)  # type: ignore[index]
    failing_id = outputs["by-age.csv"][0]
    refused = client.post(f"/api/v1/requests/{rid}/submit", headers=author)
    assert refused.status_code == 409 and refused.json["rule"]  # type: ignore[index]
    _conforms(doc, "/api/v1/requests/{request_id}/submit", "post", 409, refused.json)
    client.post(
        f"/api/v1/requests/{rid}/files/{failing_id}/exception",
        json={"text": "the 90+ band matters"},
        headers=author,
    )
    group = {"name": "tables", "context": "Counts", "controls": "threshold 10"}
    described = client.post(f"/api/v1/requests/{rid}/groups", json=group, headers=author)
    assert described.status_code == 200, described.json
    _conforms(doc, "/api/v1/requests/{request_id}/groups", "post", 200, described.json)
    submitted = client.post(f"/api/v1/requests/{rid}/submit", headers=author)
    assert submitted.status_code == 200 and submitted.json["status"] == "submitted"  # type: ignore[index]
    for checker in (a, b):
        for name, (fid, _) in outputs.items():
            url = f"/api/v1/requests/{rid}/files/{fid}/vote"
            if name == "by-age.csv":  # an override of the server's fail needs a comment
                bare = client.post(url, json={"choice": "approve"}, headers=checker)
                assert bare.status_code == 409, bare.json
            vote = client.post(
                url, json={"choice": "approve", "comment": "safe as shown"}, headers=checker
            )
            assert vote.status_code == 200, vote.json
            _conforms(
                doc, "/api/v1/requests/{request_id}/files/{file_id}/vote", "post", 200, vote.json
            )
        done = client.post(f"/api/v1/requests/{rid}/review/submit", headers=checker)
        assert done.status_code == 200, done.json
    seen = client.get(f"/api/v1/requests/{rid}", headers=a)
    _conforms(doc, "/api/v1/requests/{request_id}", "get", 200, seen.json)
    assert seen.json["summary"]["status"] == "reviewed"  # type: ignore[index]
    assert {"approve", "reject", "return_request"} <= set(seen.json["allowed"])  # type: ignore[index]
    approved = client.post(
        f"/api/v1/requests/{rid}/release", json={"comment": "two approvals"}, headers=a
    )
    assert approved.status_code == 200, approved.json
    _conforms(doc, "/api/v1/requests/{request_id}/release", "post", 200, approved.json)
    release.release_approved(ctx)
    for fid, data in outputs.values():
        got = client.get(f"/api/v1/releases/{fid}/download", headers=author)
        assert got.status_code == 200 and got.data == data
        snapshot = service.get_request(ctx, qw.checker_a, rid)
        sha = next(f.sha256 for f in snapshot.files if f.id == fid)
        assert BlobStore.for_data_dir(ctx.data_dir).read(sha) == got.data
    listed = client.get("/api/v1/requests?status=released", headers=author)
    _conforms(doc, "/api/v1/requests", "get", 200, listed.json)
    assert [r["id"] for r in listed.json["items"]] == [rid]  # type: ignore[index]
    events = client.get(f"/api/v1/requests/{rid}/activity?include_reads=1", headers=a)
    _conforms(doc, "/api/v1/requests/{request_id}/activity", "get", 200, events.json)
    assert "queue_release_download" in {e["event"] for e in events.json["items"]}  # type: ignore[index]
    revoked = client.post(f"/api/v1/requests/{rid}/revoke", json={"reason": "breach"}, headers=a)
    assert revoked.status_code == 200 and revoked.json["revoked_at"]  # type: ignore[index]
    gone = client.get(f"/api/v1/releases/{outputs['by-region.csv'][0]}/download", headers=author)
    assert gone.status_code in (403, 409) and gone.json["rule"]  # type: ignore[index]


def test_errors_are_json_with_a_rule(
    ctx: Context, qw: QueueWorld, client: FlaskClient, bearer: Bearer
) -> None:
    doc = _document(client)
    missing = client.get("/api/v1/requests")
    assert missing.status_code == 401 and missing.json["rule"] == "token_missing"  # type: ignore[index]
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = client.get("/api/v1/requests", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    cookie_only = client.get("/api/v1/requests", headers={"Cookie": "queue_session=x"})
    assert cookie_only.status_code == 401
    token = bearer(qw.author)
    unknown = client.get("/api/v1/requests/00000000-0000-4000-8000-000000000000", headers=token)
    assert unknown.status_code == 404
    _conforms(doc, "/api/v1/requests/{request_id}", "get", 404, unknown.json)
    malformed = client.get("/api/v1/requests/not-a-uuid", headers=token)
    assert malformed.status_code == 404 and malformed.is_json
    bad = client.post("/api/v1/requests", json={"project": 3}, headers=token)
    assert bad.status_code == 400 and bad.json["rule"] == "invalid_body"  # type: ignore[index]
    not_json = client.post("/api/v1/requests", data="x", headers=token)
    assert not_json.status_code == 400
    other = client.post("/api/v1/requests", json={"project": "nope"}, headers=token)
    assert other.status_code == 404


def test_the_document_lists_exactly_the_api_routes(app: Flask, client: FlaskClient) -> None:
    doc = _document(client)
    routes = {
        (re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("api.")
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }
    documented = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert documented == routes
    for needed in (
        ("/api/v1/requests", "post"),
        ("/api/v1/requests/{request_id}/files", "post"),
        ("/api/v1/requests/{request_id}/submit", "post"),
        ("/api/v1/requests/{request_id}", "get"),
        ("/api/v1/requests/{request_id}/files/{file_id}/vote", "post"),
        ("/api/v1/requests/{request_id}/review/submit", "post"),
        ("/api/v1/requests/{request_id}/return", "post"),
        ("/api/v1/requests/{request_id}/release", "post"),
        ("/api/v1/requests/{request_id}/reject", "post"),
        ("/api/v1/releases/{file_id}/download", "get"),
    ):
        assert needed in documented, needed
    upload = doc["paths"]["/api/v1/requests/{request_id}/files"]["post"]["requestBody"]
    assert "multipart/form-data" in upload["content"]
    assert doc["components"]["schemas"]["RequestDetail"]["properties"]["phase"]["enum"]
