"""Deny by default: who may reach which endpoint, the logged-in person, and security headers.

Every endpoint needs a login unless it is marked ``@public`` (or is in ``PUBLIC_ENDPOINTS``);
endpoints of the ``api`` blueprint need a bearer token instead and never look at the session
cookie (they are exempt from CSRF, so a cookie must not authenticate them). The check runs in
``gate``, an app-wide ``before_request``, so a new view is protected without anyone
remembering a decorator. What a logged-in person may *do* is decided by the service layer.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Literal, TypeVar
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, g, redirect, request, session, url_for
from flask.typing import ResponseReturnValue

from enclave.control import readcache
from enclave.control.errors import AuthenticationFailed
from enclave.control.service import login_guard, tokens
from enclave.control.views import PersonView
from enclave.control.web.state import context

Access = Literal["public", "login", "token"]
ACCESS_ATTRIBUTE = "enclave_access"
API_BLUEPRINT = "api"
# Endpoints Flask itself adds; everything else is marked where it is defined.
PUBLIC_ENDPOINTS = frozenset({"static"})
# How long a login lasts, checked on the server from the time stored at login (the cookie's
# own expiry is only advice to the browser).
SESSION_LIFETIME = timedelta(hours=8)

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
    "object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
}

View = TypeVar("View", bound=Callable[..., ResponseReturnValue])


def public(view: View) -> View:
    """Mark a view as reachable without login (the register, the login form)."""
    setattr(view, ACCESS_ATTRIBUTE, "public")
    return view


def access_of(app: Flask, endpoint: str) -> Access:
    """How ``endpoint`` is protected: ``public``, ``token`` (API) or ``login`` (the default)."""
    if endpoint in PUBLIC_ENDPOINTS:
        return "public"
    marked: Access | None = getattr(app.view_functions[endpoint], ACCESS_ATTRIBUTE, None)
    if marked is not None:
        return marked
    return "token" if endpoint.split(".")[0] == API_BLUEPRINT else "login"


def gate() -> ResponseReturnValue | None:
    """``before_request``: set ``g.user`` or ``g.api_actor`` and refuse what needs either.

    Unknown URLs pass through to Flask's 404/405. A missing login redirects to the login
    form; a missing or bad bearer token raises AuthenticationFailed (401, via the handler).
    """
    g.user, g.api_actor = None, None
    if request.endpoint is None:
        return None
    kind = access_of(current_app, request.endpoint)
    if request.blueprint == API_BLUEPRINT:  # bearer tokens only: the cookie is never read
        if kind == "token":
            g.api_actor = bearer_person().email
        return None
    g.user = session_person()
    if kind == "login" and g.user is None:
        # with the prefix the app is mounted under (the queue at /services/review-queue/
        # behind the hub's proxy), or the login would land outside the app
        target = request.script_root + request.full_path if request.method == "GET" else None
        return redirect(url_for("auth.login_form", next=target))
    return None


def bearer_person() -> PersonView:
    """The owner of the request's bearer token; AuthenticationFailed if absent or refused."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed("a bearer token is required", rule="token_missing")
    return tokens.verify_token(context(), token.strip())


def start_session(person: PersonView) -> None:
    """Log ``person`` in on a fresh session: whatever the old cookie held (including its CSRF
    token) is dropped, so a session fixed before login is worth nothing after it."""
    session.clear()
    session.permanent = True
    session["uid"] = person.uuid
    session["at"] = context().now().timestamp()
    session["sid"] = secrets.token_urlsafe(24)  # names this session in the logout record


def session_person() -> PersonView | None:
    """The logged-in person, or None; ends the session if it is too old or the account is
    suspended or gone (suspension takes effect on the next request)."""
    uid, started, sid = session.get("uid"), session.get("at"), session.get("sid")
    if not isinstance(uid, str) or not isinstance(started, float) or not isinstance(sid, str):
        return None
    age = context().now().timestamp() - started
    person = (
        login_guard.session_person(context(), uid, sid)
        if age <= SESSION_LIFETIME.total_seconds()
        else None
    )
    if person is None:
        session.clear()
    return person


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site, else None (no open redirects after login)."""
    if not target or "\\" in target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/"):
        return None
    return target


def add_security_headers(response: Response) -> Response:
    """``after_request``: CSP, no framing, no referrer; no caching of anything but assets."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.endpoint != "static":
        response.headers["Cache-Control"] = "no-store"
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


def open_read_scope() -> None:
    """``before_request``: a GET or HEAD pins one state version for its cached reads."""
    if request.method in ("GET", "HEAD"):
        readcache.begin_request()


def close_read_scope(_error: BaseException | None) -> None:
    readcache.end_request()


def init_app(app: Flask) -> None:
    """Register the gate and the header hook; call before CSRFProtect so that an anonymous
    POST is sent to the login form rather than told about CSRF."""
    app.before_request(open_read_scope)
    app.before_request(gate)
    app.after_request(add_security_headers)
    app.teardown_request(close_read_scope)
