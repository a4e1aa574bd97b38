"""Admin pages for grants: list, request (admins), approve or reject (the dataset's
custodian, who first sees the disclosure risk the grant would bring), revoke."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from flask import Blueprint, Response, render_template, request, url_for
from flask.typing import ResponseReturnValue

from enclave.control.service import grants
from enclave.control.service.microdata_policy import microdata_policies
from enclave.control.web.actions import GRANT_DECISIONS
from enclave.control.web.forms import act, actor, field, split_list
from enclave.control.web.state import context

bp = Blueprint("grants", __name__, url_prefix="/grants")


@bp.get("")
def index() -> ResponseReturnValue:
    """Grants (an admin sees all, a custodian those of their datasets), newest first."""
    project = request.args.get("project") or None
    return render_template(
        "admin/grants.html",
        grants=grants.list_grants(context(), actor(), project=project),
        project=project,
    )


@bp.post("")
def request_grant() -> ResponseReturnValue:
    """Request variables of a dataset for a project (from the project's page)."""
    project = field("project")
    back = url_for("admin.projects.show", slug=project) if project else url_for(".index")
    return act(
        lambda: grants.request_grant(
            context(),
            actor(),
            project=project,
            dataset=field("dataset"),
            variables=split_list(field("variables")),
            expires_on=field("expires_on"),
        ),
        back=back,
        done=lambda grant: (
            f"Requested {grant.dataset} for {grant.project}: the dataset's custodian decides."
        ),
    )


# The report is a self-contained page: inline styles and data: images, and no script at all.
REPORT_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'"
)


@bp.get("/<uuid:grant_id>/risk")
def risk(grant_id: UUID) -> ResponseReturnValue:
    """The disclosure-risk report of what the grant would put in the project's extract,
    for the custodian deciding it (or an admin): the dataset's microdata policy applied to
    the granted quasi-identifiers (``enclave.linkage.extracts.grant_risk_report``)."""
    from enclave.linkage.errors import LinkageError
    from enclave.linkage.extracts import grant_risk_report
    from enclave.linkage.zones import Zones

    ctx = context()
    grant = grants.get_grant(ctx, actor(), str(grant_id))
    target = microdata_policies(ctx, [grant.dataset])[grant.dataset]
    try:
        report = grant_risk_report(Zones(ctx.data_dir), grant, target)
    except LinkageError as error:
        return render_template("error.html", message=str(error)), 409
    if not report:
        message = "the granted variables hold no quasi-identifier: nothing to measure"
        return render_template("error.html", message=message), 200
    return Response(
        report, mimetype="text/html", headers={"Content-Security-Policy": REPORT_POLICY}
    )


def _decision_view(word: str) -> Callable[[UUID], ResponseReturnValue]:
    call, needs_reason = GRANT_DECISIONS[word]

    def view(grant_id: UUID) -> ResponseReturnValue:
        return act(
            lambda: call(
                context(), actor(), str(grant_id), field("reason") if needs_reason else ""
            ),
            back=url_for(".index"),
            done=lambda grant: f"Grant of {grant.dataset} to {grant.project} is now {grant.state}.",
        )

    view.__doc__ = f"{word.capitalize()} the grant (POST only)."
    return view


for _word in GRANT_DECISIONS:
    bp.add_url_rule(
        f"/<uuid:grant_id>/{_word}",
        endpoint=_word,
        view_func=_decision_view(_word),
        methods=["POST"],
    )
