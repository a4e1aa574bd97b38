"""The queue's JSON API, under ``/api/v1``: everything the pages do, with bearer tokens.

The token's owner (``enclave.control.service.tokens``) is the actor; the shared gate has
verified the token and set ``g.api_actor`` before a view runs, and never reads the session
cookie here (which is why the blueprint is exempt from CSRF). Each view validates its body,
calls one service function and returns its view as JSON; refusals become ``{"error",
"rule"}`` in the app's one handler (403 role, 409 state, 404, 400). Files under review are
not served raw here except through the checkers' audited download: the author's side views
files only in the browser.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from flask import Blueprint, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue

from enclave.control.web.jsonview import plain
from enclave.control.web.security import public
from enclave.control.web.state import context
from output_checker.queue import service
from output_checker.queue.service import signoffs
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
from output_checker.queue.web import pages, paging
from output_checker.queue.web.openapi import CONTRACT, LOAD
from output_checker.queue.web.requests import attachment
from output_checker.queue.web.state import options
from output_checker.queue.web.uploads import read_upload

operation, body = CONTRACT.operation, CONTRACT.body  # the decorator and the body reader
bp = Blueprint("api", __name__, url_prefix="/api/v1")


def _actor() -> str:
    email: str = g.api_actor
    return email


def one(view: Any, status: int = 200) -> ResponseReturnValue:
    """One view as JSON."""
    return jsonify(plain(view)), status


@bp.get("/openapi.json")
@public
@operation("This document", {"type": "object"}, public=True)
def openapi_document() -> ResponseReturnValue:
    """The OpenAPI 3.1 description of this API (public: it holds no data)."""
    return jsonify(CONTRACT.document(current_app))


@bp.get("/requests")
@operation(
    "The queue: requests the token's owner may see, a page at a time (oldest status "
    "change first; `next_page` is null on the last page)",
    RequestSummary,
    many=True,
    query=("project", "status", "page", "limit"),
)
def list_requests() -> ResponseReturnValue:
    project = request.args.get("project") or None
    status = request.args.get("status") or None
    page = paging.page_from(request.args)

    def answer() -> str:
        found, more = paging.fetch(
            lambda limit, offset: service.list_requests(
                context(), _actor(), project=project, status=status, limit=limit, offset=offset
            ),
            page,
        )
        document = {
            "items": plain(found),
            "page": page.number,
            "limit": page.limit,
            "next_page": page.number + 1 if more else None,
        }
        return current_app.json.dumps(document)

    # The same question at the same state version gets the same answer (see readcache).
    key = ("api_list", _actor(), project, status, page, context().today())
    return current_app.response_class(
        context().cached(key, answer) + "\n", mimetype="application/json"
    )


@bp.post("/requests")
@operation("Open a request on a project", RequestSummary, body="RequestCreate", status=201)
def create_request() -> ResponseReturnValue:
    data = body("RequestCreate")
    made = service.create_request(
        context(), _actor(), project=data["project"], title=data.get("title", "")
    )
    return one(made, 201)


@bp.get("/requests/<uuid:request_id>")
@operation("One request as the token's owner may see it (audited)", RequestDetail)
def get_request(request_id: UUID) -> ResponseReturnValue:
    return one(pages.request_page(context(), _actor(), str(request_id)))


@bp.post("/requests/<uuid:request_id>/files")
@operation("Add a file (multipart upload)", FileView, body="FileUpload", status=201)
def add_file(request_id: UUID) -> ResponseReturnValue:
    upload = read_upload(request.files, request.form)
    added = service.add_file(
        context(),
        _actor(),
        str(request_id),
        name=upload.name,
        data=upload.data,
        kind=request.form.get("kind") or "output",
        group=request.form.get("group") or "default",
        record=upload.record,
        recipe=upload.recipe,
        exception=request.form.get("exception", ""),
        limits=options().limits,
    )
    return one(added, 201)


@bp.post("/requests/<uuid:request_id>/files/<uuid:file_id>/update")
@operation("Replace a file's content (multipart upload)", FileView, body="FileUpdate")
def update_file(request_id: UUID, file_id: UUID) -> ResponseReturnValue:
    upload = read_upload(request.files, request.form)
    updated = service.update_file(
        context(),
        _actor(),
        str(request_id),
        str(file_id),
        data=upload.data,
        record=upload.record,
        recipe=upload.recipe,
        limits=options().limits,
    )
    return one(updated)


@bp.post("/requests/<uuid:request_id>/files/<uuid:file_id>/move")
@operation("Move a file to a group, or change its kind", FileView, body="FileMove")
def move_file(request_id: UUID, file_id: UUID) -> ResponseReturnValue:
    data = body("FileMove")
    moved = service.move_file(
        context(),
        _actor(),
        str(request_id),
        str(file_id),
        group=data.get("group"),
        kind=data.get("kind"),
    )
    return one(moved)


@bp.post("/requests/<uuid:request_id>/files/<uuid:file_id>/withdraw")
@operation("Withdraw a file", None, status=204)
def withdraw_file(request_id: UUID, file_id: UUID) -> ResponseReturnValue:
    service.withdraw_file(context(), _actor(), str(request_id), str(file_id))
    return "", 204


@bp.post("/requests/<uuid:request_id>/files/<uuid:file_id>/exception")
@operation("Ask for an exception for a failing output", FileView, body="ExceptionText")
def set_exception(request_id: UUID, file_id: UUID) -> ResponseReturnValue:
    text = body("ExceptionText")["text"]
    return one(service.set_exception(context(), _actor(), str(request_id), str(file_id), text))


@bp.post("/requests/<uuid:request_id>/groups")
@operation("Describe a group (context and controls)", GroupView, body="GroupSet")
def set_group(request_id: UUID) -> ResponseReturnValue:
    data = body("GroupSet")
    group = service.set_group(
        context(),
        _actor(),
        str(request_id),
        data["name"],
        context=data["context"],
        controls=data["controls"],
    )
    return one(group)


@bp.post("/requests/<uuid:request_id>/submit")
@operation("Submit for review (the server re-checks every output)", RequestSummary)
def submit(request_id: UUID) -> ResponseReturnValue:
    return one(service.submit(context(), _actor(), str(request_id)))


@bp.post("/requests/<uuid:request_id>/resubmit")
@operation("Resubmit a returned request", RequestSummary, body="OptionalComment")
def resubmit(request_id: UUID) -> ResponseReturnValue:
    text = body("OptionalComment").get("comment", "")
    return one(service.resubmit(context(), _actor(), str(request_id), comment=text))


@bp.post("/requests/<uuid:request_id>/withdraw")
@operation("Withdraw the request (final)", RequestSummary)
def withdraw(request_id: UUID) -> ResponseReturnValue:
    return one(service.withdraw(context(), _actor(), str(request_id)))


@bp.post("/requests/<uuid:request_id>/files/<uuid:file_id>/vote")
@operation("Vote approve or request_changes on an output", VoteView, body="VoteCast")
def vote(request_id: UUID, file_id: UUID) -> ResponseReturnValue:
    data = body("VoteCast")
    cast = service.vote(
        context(),
        _actor(),
        str(request_id),
        str(file_id),
        data["choice"],
        comment=data.get("comment", ""),
    )
    return one(cast)


@bp.post("/requests/<uuid:request_id>/review/submit")
@operation("Submit one's review of this turn", RequestSummary)
def submit_review(request_id: UUID) -> ResponseReturnValue:
    return one(service.submit_review(context(), _actor(), str(request_id)))


@bp.post("/requests/<uuid:request_id>/comments")
@operation("Comment on a group (markdown)", CommentView, body="CommentCreate", status=201)
def comment(request_id: UUID) -> ResponseReturnValue:
    data = body("CommentCreate")
    posted = service.comment(
        context(),
        _actor(),
        str(request_id),
        body=data["body"],
        group=data.get("group"),
        file_id=data.get("file_id"),
        visibility=data.get("visibility", "public"),
    )
    return one(posted, 201)


@bp.post("/requests/<uuid:request_id>/comments/<uuid:comment_id>/public")
@operation("Make one's private comment public", CommentView)
def make_public(request_id: UUID, comment_id: UUID) -> ResponseReturnValue:
    made = service.make_comment_public(context(), _actor(), str(request_id), str(comment_id))
    return one(made)


@bp.post("/requests/<uuid:request_id>/signoff")
@operation(
    "A dataset custodian's (or delegate's) sign-off on releasing the request's outputs "
    "derived from their dataset: approve, or refuse with a reason",
    signoffs.SignoffView,
    body="SignoffCast",
    status=201,
)
def sign_off(request_id: UUID) -> ResponseReturnValue:
    data = body("SignoffCast")
    cast = signoffs.sign_off(
        context(),
        _actor(),
        str(request_id),
        dataset=data["dataset"],
        decision=data["decision"],
        reason=data.get("reason", ""),
    )
    return one(cast, 201)


@bp.post("/requests/<uuid:request_id>/return")
@operation("Return the request to its author", RequestSummary, body="OptionalComment")
def return_request(request_id: UUID) -> ResponseReturnValue:
    text = body("OptionalComment").get("comment", "")
    return one(service.return_request(context(), _actor(), str(request_id), comment=text))


@bp.post("/requests/<uuid:request_id>/reject")
@operation("Reject the request (final)", RequestSummary, body="Reason")
def reject(request_id: UUID) -> ResponseReturnValue:
    reason = body("Reason")["reason"]
    return one(service.reject(context(), _actor(), str(request_id), reason=reason))


@bp.post("/requests/<uuid:request_id>/release")
@operation("Approve the release of every output", ReleaseView, body="ReleaseComment")
def release(request_id: UUID) -> ResponseReturnValue:
    text = body("ReleaseComment")["comment"]
    return one(service.approve(context(), _actor(), str(request_id), comment=text))


@bp.post("/requests/<uuid:request_id>/revoke")
@operation("Revoke a release (breach handling)", ReleaseView, body="Reason")
def revoke(request_id: UUID) -> ResponseReturnValue:
    reason = body("Reason")["reason"]
    return one(service.revoke_release(context(), _actor(), str(request_id), reason=reason))


@bp.get("/requests/<uuid:request_id>/activity")
@operation(
    "The request's audit events the token's owner may see",
    ActivityEntry,
    many=True,
    query=("include_reads",),
)
def activity(request_id: UUID) -> ResponseReturnValue:
    reads = request.args.get("include_reads") in ("1", "true")
    events = service.activity(context(), _actor(), str(request_id), include_reads=reads)
    return jsonify(items=plain(events))


@bp.get("/requests/<uuid:request_id>/files/<uuid:file_id>/download")
@operation("Download a file under review (eligible checkers; audited)", "binary")
def download(request_id: UUID, file_id: UUID) -> ResponseReturnValue:
    return attachment(service.download(context(), _actor(), str(request_id), str(file_id)))


@bp.get("/releases/<uuid:file_id>/download")
@operation("Download a released file (audited)", "binary")
def download_release(file_id: UUID) -> ResponseReturnValue:
    return attachment(service.download_release(context(), _actor(), str(file_id)))


@bp.get("/reviewers/load")
@operation("Open reviews per output checker (checkers)", LOAD)
def reviewer_load() -> ResponseReturnValue:
    return jsonify(service.reviewer_load(context(), _actor()))
