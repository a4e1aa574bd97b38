"""The admin web: server-rendered pages for admins and data custodians.

One blueprint, ``admin`` (under ``/admin``), made of one child blueprint per aggregate:
``people``, ``projects``, ``datasets``, ``grants``, ``alerts`` and ``usage``. Every view
needs a login (the app's gate); what the person may see or change is decided by the service
functions it calls.
"""

from __future__ import annotations

from flask import Blueprint, g, render_template
from flask.typing import ResponseReturnValue

from enclave.control.rules import Action, GrantState, can
from enclave.control.service.grants import list_grants
from enclave.control.web.admin import alerts, datasets, people, projects, usage
from enclave.control.web.admin import grants as grant_views
from enclave.control.web.forms import actor
from enclave.control.web.state import context

bp = Blueprint("admin", __name__, url_prefix="/admin")
for child in (people.bp, projects.bp, datasets.bp, grant_views.bp, alerts.bp, usage.bp):
    bp.register_blueprint(child)


@bp.get("/")
def index() -> ResponseReturnValue:
    """The start page: what the person can do, and grant requests awaiting a decision."""
    pending = []
    if can(g.user.roles, Action.LIST_GRANTS):
        pending = [
            grant
            for grant in list_grants(context(), actor())
            if grant.state == GrantState.REQUESTED
        ]
    return render_template("admin/index.html", pending=pending)
