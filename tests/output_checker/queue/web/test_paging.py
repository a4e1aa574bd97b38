"""The overview a page at a time through the faces: the list API's ``page`` and ``limit``
(documented in the OpenAPI document, with ``next_page``), the list page's previous and next
links (filters kept), and one-line refusals of pages that cannot exist."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from sqlalchemy import event

from enclave.control.context import Context
from output_checker.queue.workflow import Status
from tests.enclave.control.factories import FakeClock
from tests.output_checker.queue.factories import QueueWorld, make_request
from tests.output_checker.queue.web.conftest import AsPerson

Bearer = Callable[[str], dict[str, str]]
LINK = re.compile(r'<a rel="(prev|next)" href="([^"]+)"')
BAD_PAGES = ("page=0", "page=x", "page=1e3", "page=%C2%B2", "page=100001", "limit=0", "limit=201")


def _queue(ctx: Context, qw: QueueWorld, clock: FakeClock, n: int = 3) -> list[str]:
    made = []
    for i in range(n):
        made.append(make_request(ctx, qw, Status.SUBMITTED, title=f"Request {i}"))
        clock.advance(hours=1)
    return made


def test_the_api_lists_the_queue_a_page_at_a_time(
    ctx: Context, qw: QueueWorld, client: FlaskClient, bearer: Bearer, clock: FakeClock
) -> None:
    queue = _queue(ctx, qw, clock)
    token = bearer(qw.checker_c)
    document: dict[str, Any] = client.get("/api/v1/openapi.json").json  # type: ignore[assignment]
    operation = document["paths"]["/api/v1/requests"]["get"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    validator = Draft202012Validator({"components": document["components"], "allOf": [schema]})

    first = client.get("/api/v1/requests?limit=2", headers=token)
    second = client.get("/api/v1/requests?limit=2&page=2", headers=token)
    whole = client.get("/api/v1/requests", headers=token)
    for response in (first, second, whole):
        assert response.status_code == 200
        assert not list(validator.iter_errors(response.json))
    assert first.json is not None and second.json is not None and whole.json is not None
    assert [r["id"] for r in first.json["items"]] == queue[:2]
    assert (first.json["page"], first.json["limit"], first.json["next_page"]) == (1, 2, 2)
    assert [r["id"] for r in second.json["items"]] == queue[2:]
    assert (second.json["page"], second.json["next_page"]) == (2, None)
    assert [r["id"] for r in whole.json["items"]] == queue
    assert (whole.json["limit"], whole.json["next_page"]) == (50, None)
    beyond = client.get("/api/v1/requests?limit=2&page=3", headers=token).json
    assert beyond == {"items": [], "page": 3, "limit": 2, "next_page": None}
    filtered = client.get("/api/v1/requests?status=submitted&limit=1&page=3", headers=token).json
    assert filtered is not None and [r["id"] for r in filtered["items"]] == queue[2:]


@pytest.mark.parametrize("query", BAD_PAGES)
def test_the_api_refuses_a_page_that_cannot_exist(
    qw: QueueWorld, client: FlaskClient, bearer: Bearer, query: str
) -> None:
    response = client.get(f"/api/v1/requests?{query}", headers=bearer(qw.checker_c))
    assert response.status_code == 400
    assert response.json is not None and response.json["rule"] == "bad_page"
    assert "must be a whole number from 1 to" in response.json["error"]


def test_the_document_describes_page_and_limit(client: FlaskClient) -> None:
    document: dict[str, Any] = client.get("/api/v1/openapi.json").json  # type: ignore[assignment]
    operation = document["paths"]["/api/v1/requests"]["get"]
    parameters = {p["name"]: p["schema"] for p in operation["parameters"]}
    assert parameters["page"] == {"type": "integer", "minimum": 1, "maximum": 100_000, "default": 1}
    assert parameters["limit"] == {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}
    assert parameters["status"] == {"type": "string"}
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["items", "page", "limit", "next_page"]


def _links(page: str) -> dict[str, dict[str, list[str]]]:
    return {
        rel: parse_qs(urlsplit(href.replace("&amp;", "&")).query)
        for rel, href in LINK.findall(page)
    }


def test_the_list_page_links_its_pages_and_keeps_the_filters(
    ctx: Context, qw: QueueWorld, client: FlaskClient, as_person: AsPerson, clock: FakeClock
) -> None:
    queue = _queue(ctx, qw, clock)
    as_person(client, qw.checker_c)
    response = client.get("/requests?limit=2&project=study&status=submitted")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert all(f"/requests/{rid}" in page for rid in queue[:2]) and queue[2] not in page
    assert "1 to 2" in page and "Page 1" in page
    links = _links(page)
    assert set(links) == {"next"}
    assert links["next"] == {
        "page": ["2"],
        "limit": ["2"],
        "project": ["study"],
        "status": ["submitted"],
    }
    follow = LINK.findall(page)[0][1].replace("&amp;", "&")
    page = client.get(follow).get_data(as_text=True)
    assert f"/requests/{queue[2]}" in page and queue[0] not in page and "3 to 3" in page
    assert set(_links(page)) == {"prev"} and _links(page)["prev"]["page"] == ["1"]
    default = client.get("/requests").get_data(as_text=True)
    assert all(rid in default for rid in queue) and not LINK.findall(default)


def test_the_list_page_refuses_a_page_that_cannot_exist(
    qw: QueueWorld, client: FlaskClient, as_person: AsPerson
) -> None:
    as_person(client, qw.checker_c)
    response = client.get("/requests?page=0")
    assert response.status_code == 400
    assert "page must be a whole number from 1 to 100000" in response.get_data(as_text=True)


def test_a_page_costs_the_same_few_queries_however_long_the_queue(
    ctx: Context,
    qw: QueueWorld,
    client: FlaskClient,
    as_person: AsPerson,
    bearer: Bearer,
    clock: FakeClock,
) -> None:
    statements: list[str] = []
    event.listen(ctx.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    as_person(client, qw.checker_c)
    token = bearer(qw.checker_c)

    def cost(url: str, **headers: str) -> int:
        statements.clear()
        assert client.get(url, headers=headers).status_code == 200
        return len([s for s in statements if s != "BEGIN"])  # not SQLite's own BEGIN

    _queue(ctx, qw, clock, n=2)
    short = cost("/requests"), cost("/api/v1/requests", **token)
    _queue(ctx, qw, clock, n=6)
    long = cost("/requests"), cost("/api/v1/requests", **token)
    assert short == long
    # The page: the state version, the session's person and logout check, the checker, their
    # memberships and the rows, the checker again and the open reviews, and with each of the
    # three reads of the person the sanctions in force. The API: the version and the token;
    # its rows were read for the page a moment ago and nothing changed since.
    assert long[0] <= 11 and long[1] <= 2
    # Asked again with nothing changed, each costs one read of the state version.
    assert (cost("/requests"), cost("/api/v1/requests", **token)) == (1, 1)


def test_a_kept_overview_changes_with_the_queue_the_minute_and_the_session(
    ctx: Context, qw: QueueWorld, app: Any, as_person: AsPerson, bearer: Bearer, clock: FakeClock
) -> None:
    first, second = app.test_client(), app.test_client()
    as_person(first, qw.checker_c)
    as_person(second, qw.checker_c)
    with second.session_transaction() as session:
        session["sid"] = "another-session"
    token = bearer(qw.checker_c)
    made = _queue(ctx, qw, clock, n=1)
    clock.advance(seconds=10)
    page = first.get("/requests").get_data(as_text=True)
    assert page == first.get("/requests").get_data(as_text=True)  # kept: nothing changed
    assert "1 h 0 min" in page
    csrf = re.compile(r'name="csrf_token" value="([^"]+)"')
    other = second.get("/requests").get_data(as_text=True)
    assert csrf.findall(other)[0] != csrf.findall(page)[0]  # each session its own token

    def listed() -> list[str]:
        return [i["id"] for i in first.get("/api/v1/requests", headers=token).json["items"]]

    assert listed() == made
    made += _queue(ctx, qw, clock, n=1)  # a write: the next answers are read again
    assert all(m in first.get("/requests").get_data(as_text=True) for m in made)
    assert listed() == made
    clock.advance(minutes=1)  # the ages move on with the minute
    assert "2 h 1 min" in first.get("/requests").get_data(as_text=True)
