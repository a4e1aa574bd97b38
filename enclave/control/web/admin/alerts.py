"""Admin pages for security alerts (SATRE 2.5.03): the review queue of open alerts, each with
the form that closes it as benign or an incident."""

from __future__ import annotations

from uuid import UUID

from flask import Blueprint, render_template, request, url_for
from flask.typing import ResponseReturnValue

from enclave.control.service import alerts
from enclave.control.web.forms import act, actor, field
from enclave.control.web.state import context

bp = Blueprint("alerts", __name__, url_prefix="/alerts")


@bp.get("")
def index() -> ResponseReturnValue:
    """Open alerts, newest first (``?all=1``: reviewed ones too); admins only."""
    show_all = request.args.get("all") == "1"
    return render_template(
        "admin/alerts.html",
        alerts=alerts.list_alerts(context(), actor(), open_only=not show_all),
        show_all=show_all,
        outcomes=[(o, o) for o in alerts.OUTCOMES],
    )


@bp.post("/<uuid:alert_id>/review")
def review(alert_id: UUID) -> ResponseReturnValue:
    """Close an alert as benign or an incident, with a note (POST only)."""
    return act(
        lambda: alerts.review_alert(
            context(), actor(), str(alert_id), field("outcome"), field("note")
        ),
        back=url_for(".index"),
        done=lambda alert: f"Alert {alert.kind} about {alert.subject} closed as {alert.outcome}.",
    )
