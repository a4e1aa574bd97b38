"""Login (email, password and TOTP code) and logout.

A failed login says only "invalid credentials", whatever was wrong (the audit log keeps the
precise reason); repeated failures lock the email out for a while (``login_guard``). Someone
whose credentials were right but who is sanctioned, or whose organisation's assurance lapsed,
is told so, as is someone with the right password but no TOTP enrolled: nobody, least of all
an admin, output checker or data custodian, logs in without a second factor (SATRE 3.2.04).
"""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from enclave.control.errors import AuthenticationFailed
from enclave.control.service import compliance, login_guard, people
from enclave.control.standing import STANDING_RULES
from enclave.control.web.forms import actor, field
from enclave.control.web.security import public, safe_next, start_session
from enclave.control.web.state import context

bp = Blueprint("auth", __name__)

FAILED = "invalid credentials"
# Refusals said as they are: each comes only after the password was right.
EXPLAINED = frozenset({*STANDING_RULES, people.MFA_NOT_ENROLLED})


def refusal(error: AuthenticationFailed) -> str:
    """What a refused login is told: why, to someone with the right password who is not in
    standing or has no TOTP enrolled (they are to ask an admin); "invalid credentials" else."""
    return error.message if error.rule in EXPLAINED else FAILED


@bp.get("/login")
@public
def login_form() -> ResponseReturnValue:
    """The login form; ``next`` (a local path) is where a successful login goes."""
    return render_template("auth/login.html", next=safe_next(request.args.get("next")) or "")


@bp.post("/login")
@public
def login() -> ResponseReturnValue:
    """Check the credentials; on success start a fresh session and go to ``next``."""
    email = field("email")
    try:
        person = login_guard.login(
            context(), email, request.form.get("password", ""), field("code")
        )
    except AuthenticationFailed as error:
        flash(refusal(error), "error")
        page = render_template("auth/login.html", next=safe_next(field("next")) or "", email=email)
        return page, 401
    start_session(person)
    flash(f"Logged in as {person.name}.", "ok")
    return redirect(safe_next(field("next")) or url_for("admin.index"), code=303)


@bp.get("/agreement")
def agreement_form() -> ResponseReturnValue:
    """The user agreement in force, and a form to accept it (for oneself)."""
    status = compliance.agreement_status(context(), actor())
    return render_template("auth/agreement.html", status=status)


@bp.post("/agreement")
def accept_agreement() -> ResponseReturnValue:
    """Accept the version shown (refused if it is no longer the one in force)."""
    version = compliance.accept_agreement(context(), actor(), version=field("version"))
    flash(f"You accepted the user agreement, version {version}.", "ok")
    return redirect(url_for("auth.agreement_form"), code=303)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """End the session (POST, with CSRF, so another site cannot log people out). The logout is
    recorded server-side, so a copy of the cookie is worthless afterwards."""
    person, sid = g.get("user"), session.get("sid")
    if person is not None and isinstance(sid, str):
        login_guard.logout(context(), person.email, sid)
    session.clear()
    flash("Logged out.", "ok")
    return redirect(url_for("auth.login_form"), code=303)
