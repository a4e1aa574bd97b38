"""Admin page for usage data (SATRE 2.2.13-15): sessions, hours, storage and datasets per
project and per person over a date range, and the same per project and person as CSV for
charging (4.4.02). Admins only: the service refuses anyone else (403)."""

from __future__ import annotations

from flask import Blueprint, Response, render_template, request
from flask.typing import ResponseReturnValue

from enclave.control.service import usage
from enclave.control.web.forms import actor
from enclave.control.web.state import context

bp = Blueprint("usage", __name__, url_prefix="/usage")


def _report() -> usage.UsageReport:
    """The report for ``?from=`` and ``?to=`` (days; by default this month)."""
    args = request.args
    return usage.usage_report(
        context(), actor(), start=args.get("from") or None, end=args.get("to") or None
    )


@bp.get("")
def index() -> ResponseReturnValue:
    """The usage tables, per project and per person."""
    return render_template("admin/usage.html", report=_report(), mb=usage.MB)


@bp.get("/export.csv")
def export() -> ResponseReturnValue:
    """The per project and person rows as a CSV download."""
    report = _report()
    name = f"usage-{report.start}-{report.end}.csv"
    return Response(
        usage.to_csv(report),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
