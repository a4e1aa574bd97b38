"""The output checkers' side, and the discussion both sides share: per-file votes, submitting
a review, return, reject, approve (release), revoke, the audited download of a file under
review, and comments.

Each view is POST-only (with CSRF) except the download, parses its form, calls one service
function as the logged-in person and redirects back with a message. Who may do what, and
blinding, are the service's: a checker approving an output the server failed without a
comment, or returning without the required comments, is refused there (409, flashed).
"""

from __future__ import annotations

from uuid import UUID

from flask import Blueprint, request
from flask.typing import ResponseReturnValue

from enclave.control.web.forms import act, actor, field
from enclave.control.web.security import safe_next
from enclave.control.web.state import context
from output_checker.queue import service
from output_checker.queue.web.author import page
from output_checker.queue.web.requests import attachment

bp = Blueprint("reviews", __name__)


def _back(request_id: UUID) -> str:
    """Where a form returns: the page it names in ``back_to`` (one of this request's pages),
    else the request's page."""
    back = safe_next(field("back_to")) or ""
    return back if back.startswith(f"/requests/{request_id}") else page(request_id)


@bp.post("/requests/<uuid:request_id>/files/<uuid:file_id>/vote")
def vote(request_id: UUID, file_id: UUID) -> ResponseReturnValue:
    """Vote approve or request changes on an output (the same choice again resets it)."""
    return act(
        lambda: service.vote(
            context(),
            actor(),
            str(request_id),
            str(file_id),
            field("choice"),
            comment=request.form.get("comment", ""),
        ),
        back=_back(request_id),
        done=lambda v: f"Your vote: {v.vote.replace('_', ' ')}.",
    )


@bp.post("/requests/<uuid:request_id>/review")
def submit_review(request_id: UUID) -> ResponseReturnValue:
    """Submit one's review of this turn (votes are then final)."""
    return act(
        lambda: service.submit_review(context(), actor(), str(request_id)),
        back=page(request_id),
        done=lambda _: "Review submitted.",
    )


@bp.post("/requests/<uuid:request_id>/return")
def return_request(request_id: UUID) -> ResponseReturnValue:
    """Return the request to its author, with a public comment where one is needed."""
    return act(
        lambda: service.return_request(
            context(), actor(), str(request_id), comment=request.form.get("comment", "")
        ),
        back=page(request_id),
        done=lambda _: "Returned to the author.",
    )


@bp.post("/requests/<uuid:request_id>/reject")
def reject(request_id: UUID) -> ResponseReturnValue:
    """Reject the request (final), with a reason."""
    return act(
        lambda: service.reject(context(), actor(), str(request_id), reason=field("reason")),
        back=page(request_id),
        done=lambda _: "Request rejected.",
    )


@bp.post("/requests/<uuid:request_id>/release")
def approve(request_id: UUID) -> ResponseReturnValue:
    """Approve the release of every output (two approvals each), with a release comment;
    the release worker then copies the reviewed snapshots out."""
    return act(
        lambda: service.approve(
            context(), actor(), str(request_id), comment=request.form.get("comment", "")
        ),
        back=page(request_id),
        done=lambda r: f"Approved: {len(r.items)} file(s) will be released.",
    )


@bp.post("/requests/<uuid:request_id>/revoke")
def revoke(request_id: UUID) -> ResponseReturnValue:
    """Revoke a release (breach handling), with a reason: downloads stop."""
    return act(
        lambda: service.revoke_release(context(), actor(), str(request_id), reason=field("reason")),
        back=page(request_id),
        done=lambda _: "Release revoked.",
    )


@bp.get("/requests/<uuid:request_id>/files/<uuid:file_id>/download")
def download(request_id: UUID, file_id: UUID) -> ResponseReturnValue:
    """Download a file under review (eligible checkers only; audited)."""
    return attachment(service.download(context(), actor(), str(request_id), str(file_id)))


@bp.post("/requests/<uuid:request_id>/comments")
def comment(request_id: UUID) -> ResponseReturnValue:
    """Comment on a group, publicly or (checkers) privately; markdown, shown sanitised."""
    return act(
        lambda: service.comment(
            context(),
            actor(),
            str(request_id),
            body=request.form.get("body", ""),
            group=field("group") or None,
            file_id=field("file_id") or None,
            visibility=field("visibility") or "public",
        ),
        back=_back(request_id),
        done=lambda _: "Comment posted.",
    )


@bp.post("/requests/<uuid:request_id>/comments/<uuid:comment_id>/public")
def make_public(request_id: UUID, comment_id: UUID) -> ResponseReturnValue:
    """Make one's private comment of this turn public."""
    return act(
        lambda: service.make_comment_public(context(), actor(), str(request_id), str(comment_id)),
        back=page(request_id),
        done=lambda _: "Comment made public.",
    )
