"""Through the API: what the author and checkers A and B see across turns (blinding is the
service's; the API must pass on exactly that), and two reviews submitted at the same moment
over HTTP leaving one consistent state."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from enclave.control.context import Context
from output_checker.queue import service
from output_checker.queue.workflow import Status
from tests.enclave.control.dbfixtures import BACKENDS
from tests.output_checker.queue.factories import QueueWorld, make_request

Bearer = Callable[[str], dict[str, str]]


def _seen(client: FlaskClient, rid: str, token: dict[str, str]) -> dict[str, Any]:
    response = client.get(f"/api/v1/requests/{rid}", headers=token)
    assert response.status_code == 200, response.json
    found: dict[str, Any] = response.json  # type: ignore[assignment]
    return found


def _votes(seen: dict[str, Any]) -> set[tuple[str, str]]:
    return {(v["reviewer"], v["vote"]) for v in seen["votes"]}


def test_what_each_side_sees_across_turns(
    ctx: Context, qw: QueueWorld, client: FlaskClient, bearer: Bearer
) -> None:
    author, a, b = bearer(qw.author), bearer(qw.checker_a), bearer(qw.checker_b)
    rid = make_request(ctx, qw, Status.SUBMITTED)
    fid = service.get_request(ctx, qw.author, rid).files[0].id
    vote = f"/api/v1/requests/{rid}/files/{fid}/vote"
    client.post(vote, json={"choice": "request_changes", "comment": "round"}, headers=a)
    client.post(
        f"/api/v1/requests/{rid}/comments",
        json={"body": "A's note", "group": "tables", "visibility": "private"},
        headers=a,
    )
    # Turn 1, independent: each checker sees only their own; the author sees "submitted".
    assert _votes(_seen(client, rid, a)) == {(qw.checker_a, "changes_requested")}
    assert _votes(_seen(client, rid, b)) == set() and _seen(client, rid, b)["comments"] == []
    seen = _seen(client, rid, author)
    assert seen["summary"]["status"] == "submitted" and not seen["votes"] and not seen["comments"]
    client.post(f"/api/v1/requests/{rid}/review/submit", headers=a)
    assert _seen(client, rid, author)["summary"]["status"] == "submitted"  # not "partially"
    assert _votes(_seen(client, rid, b)) == set()
    client.post(vote, json={"choice": "approve"}, headers=b)
    client.post(f"/api/v1/requests/{rid}/review/submit", headers=b)
    # Consolidation: the checkers see everything, the author still nothing of this turn.
    both = {(qw.checker_a, "changes_requested"), (qw.checker_b, "approved")}
    assert _votes(_seen(client, rid, b)) == both
    # (A's vote justification is kept as a private comment too)
    assert {c["body"] for c in _seen(client, rid, b)["comments"]} == {"A's note", "round"}
    assert _seen(client, rid, author)["votes"] == []
    returned = client.post(
        f"/api/v1/requests/{rid}/return", json={"comment": "please round"}, headers=a
    )
    assert returned.status_code == 200, returned.json
    # Turn 2, the author's: public items of turn 1, a conflict read as changes requested.
    seen = _seen(client, rid, author)
    assert seen["summary"]["status"] == "returned"
    assert [c["body"] for c in seen["comments"]] == ["please round"]  # not A's private note
    assert seen["files"][0]["decision"] == "changes_requested"
    assert _seen(client, rid, a)["files"][0]["decision"] == "conflicted"


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
def test_two_reviews_submitted_at_the_same_moment(
    app: Flask, ctx: Context, qw: QueueWorld, bearer: Bearer
) -> None:
    rid = make_request(ctx, qw, Status.SUBMITTED)
    fid = service.get_request(ctx, qw.author, rid).files[0].id
    tokens = [bearer(qw.checker_a), bearer(qw.checker_b)]
    for token in tokens:
        app.test_client().post(
            f"/api/v1/requests/{rid}/files/{fid}/vote", json={"choice": "approve"}, headers=token
        )
    start = threading.Barrier(len(tokens))
    results: list[int] = []

    def submit(token: dict[str, str]) -> None:
        client = app.test_client()  # one client per thread, like two browsers
        start.wait()
        response = client.post(f"/api/v1/requests/{rid}/review/submit", headers=token)
        results.append(response.status_code)

    threads = [threading.Thread(target=submit, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [200, 200]
    detail = service.get_request(ctx, qw.checker_a, rid)
    assert detail.summary.status is Status.REVIEWED and detail.summary.reviews_this_turn == 2
    assert detail.files[0].decision == "approved"
