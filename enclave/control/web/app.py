"""The application factory of the control plane's web faces: admin pages, login, the public
register and the JSON API, over the service layer.

``create_app(settings)`` builds a new app each call (nothing exists at import). Production:
``gunicorn 'enclave.control.web:create_app()'`` (settings from ``ENCLAVE_`` variables) or
``enclave serve``. Tests pass ``testing=True`` and their own Context.
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import Flask, g
from flask_wtf.csrf import CSRFProtect

from enclave.control.context import Context, open_context, with_read_cache
from enclave.control.rules import Action, can
from enclave.control.web import api, auth, errors, register, security
from enclave.control.web.admin import bp as admin_bp
from enclave.control.web.state import WebState, install
from enclave.settings import Settings

MAX_REQUEST_BYTES = 1 << 20


def create_app(
    settings: Settings | None = None, *, context: Context | None = None, testing: bool = False
) -> Flask:
    """A configured Flask app.

    ``settings`` defaults to ``Settings.load()``; ``context`` to ``open_context(settings)``
    (which raises ControlError if the schema is not current). Outside ``testing``, raises
    SettingsError unless ``settings.secret_key`` has 32 characters or more; a test app
    without one gets a random key.
    """
    settings = settings or Settings.load()
    if testing:
        secret = settings.secret_key or secrets.token_hex(32)
    else:
        secret = settings.require_secret_key()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secret,
        TESTING=testing,
        SESSION_COOKIE_NAME="enclave_session",
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=security.SESSION_LIFETIME,
        # a session ends 8 hours after login whatever happens (security.session_person), so
        # the cookie is written when the session changes only, not re-signed on every answer
        SESSION_REFRESH_EACH_REQUEST=False,
        MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
        # With Referrer-Policy: no-referrer browsers send no Referer, so Flask-WTF's
        # HTTPS-only Referer check would refuse every form; the token and SameSite=Lax remain.
        WTF_CSRF_SSL_STRICT=False,
    )
    install(app, WebState(settings, with_read_cache(context or open_context(settings))))
    security.init_app(app)  # before CSRF: an anonymous POST goes to the login form
    csrf = CSRFProtect(app)
    csrf.exempt(api.bp)  # bearer tokens only, never cookies (see security.gate)
    app.register_blueprint(auth.bp)
    app.register_blueprint(register.bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(api.bp)
    errors.init_app(app)
    app.context_processor(_template_helpers)
    return app


def _template_helpers() -> dict[str, Any]:
    def allowed(action: str, state: str | None = None) -> bool:
        """Whether the logged-in person's roles allow ``action`` (to show a button or not;
        the service layer decides again when it is pressed)."""
        user = g.get("user")
        return user is not None and can(user.roles, Action(action), state)

    return {"can": allowed}
