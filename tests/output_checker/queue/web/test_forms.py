"""The pages' forms with real logins (password and TOTP): each posts to one service call and
comes back with a message; a refusal by the workflow (a missing comment, the wrong status) is
flashed next to the form, and nothing changes."""

from __future__ import annotations

import io
import json
import re

from enclave.control.context import Context
from output_checker.queue import service
from output_checker.queue.workflow import Status
from tests.enclave.control.web.conftest import Web
from tests.output_checker.queue.factories import (
    QueueWorld,
    distinct,
    failing_output,
    make_request,
    passing_output,
)
from tests.output_checker.queue.web.helpers import file_id, with_failing


def _flashes(web: Web) -> list[tuple[str, str]]:
    """The messages of the last form (read at once: the next page shown would consume them)."""
    with web.client.session_transaction() as session:
        found: list[tuple[str, str]] = session.pop("_flashes", [])
        return found


def test_a_researcher_prepares_and_submits_through_the_forms(
    ctx: Context, qw: QueueWorld, web: Web
) -> None:
    web.login(qw.author)
    opened = web.post("/requests", {"project": "study", "title": "Beds by age"})
    assert opened.status_code == 303
    rid = opened.headers["Location"].rsplit("/", 1)[1]
    output = distinct(failing_output(qw))
    upload = {
        "file": (io.BytesIO(output.data), output.name),
        "group": "tables",
        "record": (io.BytesIO(json.dumps(output.record).encode()), "record.json"),
        "recipe": (io.BytesIO(json.dumps(output.recipe).encode()), "recipe.json"),
    }
    assert web.post(f"/requests/{rid}/files", upload).status_code == 303
    assert _flashes(web) == [("ok", "File added.")]
    web.post(f"/requests/{rid}/submit")
    ((category, message),) = _flashes(web)
    assert category == "error" and "context" in message  # groups need describing first
    web.post(f"/requests/{rid}/groups", {"group": "tables", "context": "c", "controls": "k"})
    assert _flashes(web) == [("ok", "Group tables described.")]
    web.post(f"/requests/{rid}/submit")
    ((category, message),) = _flashes(web)
    assert category == "error" and "exception" in message  # a failing output needs one
    fid = file_id(ctx, qw, rid, output.name)
    web.post(f"/requests/{rid}/files/{fid}/exception", {"exception": "the 90+ band matters"})
    assert [c for c, _ in _flashes(web)] == ["ok"]
    assert web.post(f"/requests/{rid}/submit").status_code == 303
    assert _flashes(web) == [("ok", "Submitted for review.")]
    detail = service.get_request(ctx, qw.checker_a, rid)
    assert detail.summary.status is Status.SUBMITTED and detail.files[0].recheck == "matches"


def test_approving_a_failed_output_needs_a_comment(ctx: Context, qw: QueueWorld, web: Web) -> None:
    rid = with_failing(ctx, qw)
    fid = file_id(ctx, qw, rid, "by-age.csv")
    web.login(qw.checker_a)
    page = f"/requests/{rid}/files/{fid}"
    refused = web.post(f"{page}/vote", {"choice": "approve", "back_to": page})
    assert refused.status_code == 303 and refused.headers["Location"] == page
    ((category, message),) = _flashes(web)
    assert category == "error" and "comment" in message
    assert service.get_request(ctx, qw.checker_a, rid).votes == ()
    web.post(f"{page}/vote", {"choice": "approve", "comment": "3 is safe here", "back_to": page})
    assert _flashes(web) == [("ok", "Your vote: approved.")]
    shown = web.page(page)
    assert re.search(r'id="my-vote">approved<', shown) and "3 is safe here" in shown


def test_return_needs_a_public_comment_and_the_author_replies(
    ctx: Context, qw: QueueWorld, web: Web
) -> None:
    rid = make_request(ctx, qw, Status.SUBMITTED)
    fid = service.get_request(ctx, qw.author, rid).files[0].id
    for checker in (qw.checker_a, qw.checker_b):
        service.vote(ctx, checker, rid, fid, "request_changes", comment="round to 5")
        service.submit_review(ctx, checker, rid)
    web.login(qw.checker_a)
    web.post(f"/requests/{rid}/return")
    ((category, _),) = _flashes(web)
    assert category == "error"
    assert service.get_request(ctx, qw.author, rid).summary.status is Status.SUBMITTED
    web.post(f"/requests/{rid}/return", {"comment": "Please **round** to 5"})
    assert _flashes(web) == [("ok", "Returned to the author.")]
    web.post("/logout")
    web.login(qw.author)
    page = web.page(f"/requests/{rid}")
    assert "returned" in page and "<strong>round</strong>" in page
    web.post(f"/requests/{rid}/resubmit", {"comment": "Rounded."})
    assert _flashes(web) == [("ok", "Resubmitted for review.")]
    assert service.get_request(ctx, qw.author, rid).summary.turn == 3


def test_release_reject_and_revoke_forms(ctx: Context, qw: QueueWorld, web: Web) -> None:
    reviewed = make_request(ctx, qw, Status.REVIEWED)
    other = make_request(ctx, qw, Status.REVIEWED, outputs=(passing_output(qw, "b.csv"),))
    web.login(qw.checker_c)
    web.post(f"/requests/{reviewed}/release", {"comment": ""})
    assert [c for c, _ in _flashes(web)] == ["error"]  # a release comment is required
    web.post(f"/requests/{reviewed}/release", {"comment": "Two approvals each."})
    assert _flashes(web) == [("ok", "Approved: 1 file(s) will be released.")]
    web.post(f"/requests/{reviewed}/revoke", {"reason": "wrong file"})
    assert _flashes(web) == [("ok", "Release revoked.")]
    web.post(f"/requests/{other}/reject", {"reason": "not safe"})
    assert _flashes(web) == [("ok", "Request rejected.")]
    statuses = {service.get_request(ctx, qw.checker_c, r).summary.status for r in (reviewed, other)}
    assert statuses == {Status.REVOKED, Status.REJECTED}
    page = web.page(f"/requests/{reviewed}")
    assert "Revoked at" in page and "wrong file" in page


def test_the_authors_file_forms(ctx: Context, qw: QueueWorld, web: Web) -> None:
    rid = make_request(ctx, qw, Status.RETURNED)
    fid = service.get_request(ctx, qw.author, rid).files[0].id
    web.login(qw.author)
    web.post(f"/requests/{rid}/files/{fid}/move", {"group": "maps"})
    assert _flashes(web) == [("ok", "by-region.csv moved.")]
    data = service.view_file(ctx, qw.author, rid, fid).data + b"\n"
    web.post(f"/requests/{rid}/files/{fid}/update", {"file": (io.BytesIO(data), "x.csv")})
    assert _flashes(web) == [("ok", "New version uploaded.")]
    file = service.get_request(ctx, qw.author, rid).files[0]
    assert file.group == "maps" and len(file.versions) == 2
    web.post(f"/requests/{rid}/files/{fid}/withdraw")
    assert _flashes(web) == [("ok", "File withdrawn.")]
    assert service.get_request(ctx, qw.author, rid).files[0].withdrawn
    web.post(f"/requests/{rid}/withdraw")
    assert _flashes(web) == [("ok", "Request withdrawn.")]
    assert service.get_request(ctx, qw.author, rid).summary.status is Status.WITHDRAWN


def test_comments_and_making_one_public(ctx: Context, qw: QueueWorld, web: Web) -> None:
    rid = make_request(ctx, qw, Status.SUBMITTED)
    web.login(qw.checker_a)
    web.post(
        f"/requests/{rid}/comments",
        {"group": "tables", "visibility": "private", "body": "Is *this* safe?"},
    )
    assert _flashes(web) == [("ok", "Comment posted.")]
    (note,) = service.get_request(ctx, qw.checker_a, rid).comments
    assert note.visibility == "private"
    web.post(f"/requests/{rid}/comments/{note.id}/public")
    assert _flashes(web) == [("ok", "Comment made public.")]
    assert service.get_request(ctx, qw.checker_a, rid).comments[0].visibility == "public"
