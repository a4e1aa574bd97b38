"""Admin pages for people: list, create, view (with their sanctions), accredit."""

from __future__ import annotations

from uuid import UUID

from flask import Blueprint, abort, g, render_template, url_for
from flask.typing import ResponseReturnValue

from enclave.control.rules import Action, Role, can
from enclave.control.service import incidents, people
from enclave.control.views import PersonView
from enclave.control.web.forms import act, actor, field, listed
from enclave.control.web.state import context

bp = Blueprint("people", __name__, url_prefix="/people")


def _person(person_id: UUID) -> PersonView:
    """The person with this public id, or 404 (their details still need permission)."""
    person = people.person_by_uuid(context(), str(person_id))
    if person is None:
        abort(404)
    return person


@bp.get("")
def index() -> ResponseReturnValue:
    """Every account, with the form to create one (admins)."""
    return render_template(
        "admin/people.html",
        people=people.list_people(context(), actor()),
        roles=[(role.value, role.value.replace("_", " ")) for role in Role],
    )


@bp.post("")
def create() -> ResponseReturnValue:
    """Create an account; its password and TOTP are set with ``enclave admin``."""
    return act(
        lambda: people.create_person(
            context(),
            actor(),
            email=field("email"),
            name=field("name"),
            organisation=field("organisation"),
            roles=listed("role"),
            username=field("username") or None,
        ),
        back=url_for(".index"),
        done=lambda person: f"Created {person.email}.",
        to=lambda person: url_for(".show", person_id=person.uuid),
    )


@bp.get("/<uuid:person_id>")
def show(person_id: UUID) -> ResponseReturnValue:
    """One person: roles and accreditations, with the form to accredit them."""
    person = people.get_person(context(), actor(), _person(person_id).email)
    sanctions = []
    if can(g.user.roles, Action.LIST_PEOPLE):
        sanctions = incidents.list_sanctions(context(), actor(), email=person.email)
    return render_template("admin/person.html", person=person, sanctions=sanctions)


@bp.post("/<uuid:person_id>/accreditations")
def accredit(person_id: UUID) -> ResponseReturnValue:
    """Record an accreditation or training certificate."""
    email = _person(person_id).email
    return act(
        lambda: people.accredit(
            context(),
            actor(),
            email,
            scheme=field("scheme"),
            reference=field("reference"),
            issued_on=field("issued_on"),
            expires_on=field("expires_on"),
        ),
        back=url_for(".show", person_id=person_id),
        done=lambda person: f"Accredited {person.email} until {person.accredited_until}.",
    )
