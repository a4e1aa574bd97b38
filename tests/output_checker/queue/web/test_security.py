"""The web faces' security controls, each tested by attempting the attack: deny by default
(walking the URL map), CSRF on every form, security headers, POST-only state changes, the
upload size limit, and file names that try to leave the snapshot store."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from enclave.control.context import Context
from enclave.control.web.security import access_of
from output_checker.queue import service
from tests.enclave.control.web.conftest import Web
from tests.output_checker.queue.factories import QueueWorld, make_request
from tests.output_checker.queue.web.conftest import LIMITS, AsPerson

PUBLIC = {
    "static",
    "assets.shared",
    "auth.login_form",
    "auth.login",
    "auth.oauth_start",
    "auth.oauth_callback",
    "api.openapi_document",
}


def _routes(app: Flask) -> list[tuple[str, str, str]]:
    found = []
    for rule in app.url_map.iter_rules():
        values = {name: str(uuid.uuid4()) for name in rule.arguments}
        if "filename" in values:
            values["filename"] = "queue.css"
        if "name" in values:
            values["name"] = "enclave.css"
        url = rule.build(values)[1]  # type: ignore[union-attr]
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((method, url, rule.endpoint))
    return found


def test_only_the_expected_endpoints_are_public(app: Flask) -> None:
    endpoints = {endpoint for _, _, endpoint in _routes(app)}
    public = {e for e in endpoints if access_of(app, e) == "public"}
    assert public == PUBLIC
    assert {e for e in endpoints if e.startswith("api.")} - PUBLIC == {
        e for e in endpoints if access_of(app, e) == "token"
    }


def test_everything_else_refuses_anonymous_requests(app: Flask, client: FlaskClient) -> None:
    checked = 0
    for method, url, endpoint in _routes(app):
        if endpoint in PUBLIC:
            continue
        response = client.open(url, method=method)
        if endpoint.startswith("api."):
            assert response.status_code == 401, (method, url)
            assert response.json == {"error": "a bearer token is required", "rule": "token_missing"}
        else:
            assert response.status_code == 302, (method, url)
            assert response.headers["Location"].startswith("/login"), (method, url)
        checked += 1
    assert checked > 40


def test_every_form_needs_its_csrf_token(
    app: Flask, client: FlaskClient, qw: QueueWorld, as_person: AsPerson
) -> None:
    as_person(client, qw.checker_a)
    posts = [(url, e) for method, url, e in _routes(app) if method == "POST"]
    forms = [(url, e) for url, e in posts if not e.startswith("api.")]
    assert len(forms) > 15
    for url, _ in forms:
        response = client.post(url, data={"comment": "x", "reason": "x"})
        assert response.status_code == 400, url
        assert "did not come from this site" in response.get_data(as_text=True), url


def test_state_changes_are_post_only(app: Flask) -> None:
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] in ("author", "reviews") and "download" not in rule.rule:
            assert rule.methods is not None and "GET" not in rule.methods, rule.rule


def test_pages_carry_the_security_headers(
    client: FlaskClient, qw: QueueWorld, as_person: AsPerson
) -> None:
    as_person(client, qw.author)
    response = client.get("/requests")
    headers = response.headers
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cache-Control"] == "no-store"
    assert "<script" not in response.get_data(as_text=True).replace(
        '<script src="/static/queue.js" defer></script>', ""
    )  # no inline script: the CSP allows only the site's own files


def _upload(name: str, data: bytes) -> dict[str, object]:
    return {"file": (io.BytesIO(data), name), "kind": "supporting", "group": "tables"}


def test_uploads_over_the_size_limit_are_refused(
    ctx: Context,
    qw: QueueWorld,
    client: FlaskClient,
    web: Web,
    as_person: AsPerson,
    app: Flask,
    bearer: Callable[[str], dict[str, str]],
) -> None:
    rid = make_request(ctx, qw)
    as_person(client, qw.author)
    limit = app.config["MAX_CONTENT_LENGTH"]
    # A raw body (the test client would spool a multipart one of this size to a temporary
    # file it never closes): refused on its declared length, before anything is parsed.
    huge = client.post(
        f"/requests/{rid}/files",
        data=b"x" * (limit + 1),
        content_type="multipart/form-data; boundary=b",
    )
    assert huge.status_code == 413
    api = client.post(
        f"/api/v1/requests/{rid}/files",
        data=b"x" * (limit + 1),
        content_type="multipart/form-data; boundary=b",
        headers=bearer(qw.author),
    )
    assert api.status_code == 413 and api.json["rule"] == "http"  # type: ignore[index]
    too_big_a_file = web.post(
        f"/requests/{rid}/files", _upload("big.txt", b"x" * (LIMITS.max_file_bytes + 1))
    )
    assert too_big_a_file.status_code == 303  # back to the page, with the reason flashed
    with client.session_transaction() as session:
        ((category, message),) = session["_flashes"]
    assert category == "error" and "big.txt" in message, message
    names = {f.name for f in service.get_request(ctx, qw.author, rid).files}
    assert "big.txt" not in names


@pytest.mark.parametrize(
    "name", ["../../../evil.txt", "..\\evil.txt", "/etc/evil.txt", ".hidden.txt", "a/b.txt"]
)
def test_file_names_cannot_leave_the_store(
    name: str,
    ctx: Context,
    qw: QueueWorld,
    client: FlaskClient,
    as_person: AsPerson,
    bearer: Callable[[str], dict[str, str]],
    tmp_path: Path,
) -> None:
    rid = make_request(ctx, qw)
    token = bearer(qw.author)
    response = client.post(
        f"/api/v1/requests/{rid}/files", data=_upload(name, b"hello\n"), headers=token
    )
    assert response.status_code == 400, response.json
    assert response.json["rule"]  # type: ignore[index]
    names = {f.name for f in service.get_request(ctx, qw.author, rid).files}
    assert all("evil" not in n and "hidden" not in n and "b.txt" not in n for n in names)
    assert not [p for p in tmp_path.rglob("*evil*")] and not list(Path("/etc").glob("evil*"))
