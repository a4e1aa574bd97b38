"""The researcher's side: open a request, add, update, move and withdraw files, describe
groups, ask for exceptions, submit, resubmit and withdraw (comments are in ``reviews``).

Each view is POST-only (with CSRF), parses its form, calls one service function as the
logged-in person and redirects back with a message; a refusal is flashed next to the form
(by the app's one error handler), or is a 403 page when the person's role does not allow it.
"""

from __future__ import annotations

from uuid import UUID

from flask import Blueprint, request, url_for
from flask.typing import ResponseReturnValue

from enclave.control.web.forms import act, actor, field
from enclave.control.web.state import context
from output_checker.queue import service
from output_checker.queue.web.state import options
from output_checker.queue.web.uploads import read_upload

bp = Blueprint("author", __name__)


def page(request_id: UUID) -> str:
    """The request's page, where every form of this module returns."""
    return url_for("requests.detail", request_id=request_id)


@bp.post("/requests")
def create() -> ResponseReturnValue:
    """Open a pending request on a project."""
    return act(
        lambda: service.create_request(
            context(), actor(), project=field("project"), title=field("title")
        ),
        back=url_for("requests.overview"),
        done=lambda r: f"Request opened on {r.project}.",
        to=lambda r: page(UUID(r.id)),
    )


@bp.post("/requests/<uuid:request_id>/files")
def add_file(request_id: UUID) -> ResponseReturnValue:
    """Upload a file (with its checker record and recipe, for outputs)."""

    def call() -> object:
        upload = read_upload(request.files, request.form)
        return service.add_file(
            context(),
            actor(),
            str(request_id),
            name=upload.name,
            data=upload.data,
            kind=field("kind") or "output",
            group=field("group") or "default",
            record=upload.record,
            recipe=upload.recipe,
            exception=field("exception"),
            limits=options().limits,
        )

    return act(call, back=page(request_id), done=lambda f: "File added.")


@bp.post("/requests/<uuid:request_id>/files/<uuid:file_id>/update")
def update_file(request_id: UUID, file_id: UUID) -> ResponseReturnValue:
    """Replace a file's content with a new version (its votes are reset)."""

    def call() -> object:
        upload = read_upload(request.files, request.form)
        return service.update_file(
            context(),
            actor(),
            str(request_id),
            str(file_id),
            data=upload.data,
            record=upload.record,
            recipe=upload.recipe,
            limits=options().limits,
        )

    return act(call, back=page(request_id), done=lambda f: "New version uploaded.")


@bp.post("/requests/<uuid:request_id>/files/<uuid:file_id>/move")
def move_file(request_id: UUID, file_id: UUID) -> ResponseReturnValue:
    """Move a file to another group and/or make it an output or a supporting file."""
    return act(
        lambda: service.move_file(
            context(),
            actor(),
            str(request_id),
            str(file_id),
            group=field("group") or None,
            kind=field("kind") or None,
        ),
        back=page(request_id),
        done=lambda f: f"{f.name} moved.",
    )


@bp.post("/requests/<uuid:request_id>/files/<uuid:file_id>/withdraw")
def withdraw_file(request_id: UUID, file_id: UUID) -> ResponseReturnValue:
    """Withdraw a file from the request."""
    return act(
        lambda: service.withdraw_file(context(), actor(), str(request_id), str(file_id)),
        back=page(request_id),
        done=lambda _: "File withdrawn.",
    )


@bp.post("/requests/<uuid:request_id>/files/<uuid:file_id>/exception")
def set_exception(request_id: UUID, file_id: UUID) -> ResponseReturnValue:
    """Ask for an exception for an output the checks fail (shown to the checkers)."""
    return act(
        lambda: service.set_exception(
            context(), actor(), str(request_id), str(file_id), field("exception")
        ),
        back=page(request_id),
        done=lambda f: f"Exception request saved for {f.name}.",
    )


@bp.post("/requests/<uuid:request_id>/groups")
def set_group(request_id: UUID) -> ResponseReturnValue:
    """Describe a group: what its files are, and which disclosure controls were applied."""
    return act(
        lambda: service.set_group(
            context(),
            actor(),
            str(request_id),
            field("group"),
            context=field("context"),
            controls=field("controls"),
        ),
        back=page(request_id),
        done=lambda g: f"Group {g.name} described.",
    )


@bp.post("/requests/<uuid:request_id>/submit")
def submit(request_id: UUID) -> ResponseReturnValue:
    """Hand the request to the output checkers (the server re-checks every output)."""
    return act(
        lambda: service.submit(context(), actor(), str(request_id)),
        back=page(request_id),
        done=lambda _: "Submitted for review.",
    )


@bp.post("/requests/<uuid:request_id>/resubmit")
def resubmit(request_id: UUID) -> ResponseReturnValue:
    """Hand a returned request back, with a public reply on the groups that need one."""
    return act(
        lambda: service.resubmit(context(), actor(), str(request_id), comment=field("comment")),
        back=page(request_id),
        done=lambda _: "Resubmitted for review.",
    )


@bp.post("/requests/<uuid:request_id>/withdraw")
def withdraw(request_id: UUID) -> ResponseReturnValue:
    """Withdraw the whole request (final)."""
    return act(
        lambda: service.withdraw(context(), actor(), str(request_id)),
        back=page(request_id),
        done=lambda _: "Request withdrawn.",
    )
