"""Custodian sign-off pages (SATRE 3.1.06): the custodian's (or delegate's) list of requests
waiting for their sign-off, a request's sign-off page (its outputs, where each dataset's
sign-off stands, the form) and the audited download of an output to read before deciding.

A custodian who is not an output checker cannot open the request page itself; this page
shows them what they decide on, and nothing of the checkers' votes or comments. The request
page shows the same sign-off section (``requests/_signoff.html``) to everyone who sees it.
"""

from __future__ import annotations

from uuid import UUID

from flask import Blueprint, render_template, request, url_for
from flask.typing import ResponseReturnValue

from enclave.control.web.forms import act, actor, field
from enclave.control.web.state import context
from output_checker.queue.service import signoffs
from output_checker.queue.web.requests import attachment

bp = Blueprint("signoffs", __name__)


def signoff_page(request_id: UUID | str) -> str:
    """The request's sign-off page, where its form returns."""
    return url_for("signoffs.page", request_id=request_id)


@bp.get("/signoffs")
def overview() -> ResponseReturnValue:
    """Requests under review waiting for the viewer's sign-off, oldest first."""
    return render_template(
        "requests/signoffs.html", waiting=signoffs.awaiting_signoff(context(), actor())
    )


@bp.get("/requests/<uuid:request_id>/signoff")
def page(request_id: UUID) -> ResponseReturnValue:
    """A request's outputs and custodian sign-offs, with the form for a signer (audited)."""
    status = signoffs.view_signoff_page(context(), actor(), str(request_id))
    return render_template("requests/signoff.html", egress=status)


@bp.post("/requests/<uuid:request_id>/signoff")
def sign_off(request_id: UUID) -> ResponseReturnValue:
    """Approve, or refuse with a reason, the release for one dataset."""
    back = signoff_page(request_id)
    if field("back_to") == "request":
        back = url_for("requests.detail", request_id=request_id)
    return act(
        lambda: signoffs.sign_off(
            context(),
            actor(),
            str(request_id),
            dataset=field("dataset"),
            decision=field("decision"),
            reason=request.form.get("reason", ""),
        ),
        back=back,
        done=lambda s: f"Sign-off for {s.dataset} recorded: {s.decision.value}.",
    )


@bp.get("/requests/<uuid:request_id>/signoff/files/<uuid:file_id>")
def download(request_id: UUID, file_id: UUID) -> ResponseReturnValue:
    """An output of the request, for its signer to read (audited)."""
    return attachment(signoffs.signoff_file(context(), actor(), str(request_id), str(file_id)))
