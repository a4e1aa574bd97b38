"""Login and logout: local login with password and TOTP (standalone use and tests), or
JupyterHub's OAuth with PKCE when the app runs as a hub service (``QueueOptions.oauth``;
then the local form is off).

Both end the same way: ``security.start_session`` (a fresh session, so nothing fixed before
login survives it). A local failure says only "invalid credentials" and counts towards the
control plane's lockout (``login_guard``); someone with the right password but no TOTP
enrolled, or not in standing, is told why (``enclave.control.web.auth.refusal``): reviewers
log in with a second factor like everyone (SATRE 3.2.04). Through JupyterHub, the hub's own
login (TOTP, or the identity provider's MFA) is the second factor. Logout is the control
plane's own view: recorded server-side, so a copied cookie is worthless afterwards.
"""

from __future__ import annotations

import hmac
import secrets

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from enclave.control.errors import AuthenticationFailed
from enclave.control.service import login_guard
from enclave.control.web.auth import logout, refusal
from enclave.control.web.forms import field
from enclave.control.web.security import public, safe_next, start_session
from enclave.control.web.state import context
from output_checker.queue.web.oauth import pkce_pair
from output_checker.queue.web.state import options

bp = Blueprint("auth", __name__)
bp.add_url_rule("/logout", view_func=logout, methods=["POST"])

# Where the OAuth round trip keeps its secrets: in the signed session cookie, so any worker
# process can finish a login another one started.
STATE_KEYS = ("oauth_state", "oauth_verifier", "oauth_next")


@bp.get("/login")
@public
def login_form() -> ResponseReturnValue:
    """The login page: the local form, or the button that logs in through JupyterHub."""
    target = safe_next(request.args.get("next")) or ""
    return render_template("auth/login.html", next=target, hub=options().oauth is not None)


@bp.post("/login")
@public
def login() -> ResponseReturnValue:
    """Check email, password and TOTP code; on success start a fresh session and go on to
    ``next``. Off (404) when JupyterHub does the logging in."""
    if options().oauth is not None:
        abort(404)
    email = field("email")
    try:
        person = login_guard.login(
            context(), email, request.form.get("password", ""), field("code")
        )
    except AuthenticationFailed as error:
        flash(refusal(error), "error")
        target = safe_next(field("next")) or ""
        return render_template("auth/login.html", next=target, email=email, hub=False), 401
    start_session(person)
    flash(f"Logged in as {person.name}.", "ok")
    return redirect(safe_next(field("next")) or url_for("requests.overview"), code=303)


@bp.get("/oauth/login")
@public
def oauth_start() -> ResponseReturnValue:
    """Send the browser to JupyterHub to log in, with a fresh state and PKCE challenge."""
    client = options().oauth
    if client is None:
        abort(404)
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(24)
    session["oauth_state"], session["oauth_verifier"] = state, verifier
    session["oauth_next"] = safe_next(request.args.get("next")) or ""
    return redirect(client.authorize_url(state=state, code_challenge=challenge), code=303)


@bp.get("/oauth_callback")
@public
def oauth_callback() -> ResponseReturnValue:
    """JupyterHub's redirect back: the state must be the one this browser was given (no
    login CSRF), the code is swapped for a token with the PKCE verifier, and the hub's user
    must be an active person of the control plane."""
    client = options().oauth
    if client is None:
        abort(404)
    state, verifier, target = (session.pop(key, None) for key in STATE_KEYS)
    given, code = request.args.get("state", ""), request.args.get("code", "")
    matches = isinstance(state, str) and hmac.compare_digest(given.encode(), state.encode())
    if not matches or not code:
        raise AuthenticationFailed("the login did not complete: start again", rule="oauth_state")
    token = client.token_for_code(code, code_verifier=str(verifier))
    person = login_guard.vouched_login_in_standing(
        context(), client.username_for_token(token), method="hub_oauth"
    )
    start_session(person)
    flash(f"Logged in as {person.name}.", "ok")
    return redirect(safe_next(str(target or "")) or url_for("requests.overview"), code=303)
