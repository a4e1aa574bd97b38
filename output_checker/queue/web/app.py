"""The application factory of the review queue's web faces: the review and researcher pages,
login, and the JSON API, over the queue's service layer.

``create_app(settings)`` builds a new app each call (nothing exists at import). It shares the
control plane's web machinery rather than copying it: the deny-by-default gate, sessions,
security headers and logout (``enclave.control.web.security``), form helpers (``forms``),
the error pages and the form macros (its templates are the fallback of this app's). Production:
``gunicorn 'output_checker.queue.web:create_app()'`` (settings from ``ENCLAVE_`` variables)
or ``output-checker serve``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from flask import Flask
from flask_wtf.csrf import CSRFProtect
from jinja2 import ChoiceLoader, FileSystemLoader

import enclave.control.web
from enclave.control.context import Context, open_context, with_read_cache
from enclave.control.web import security
from enclave.control.web.state import WebState
from enclave.control.web.state import install as install_control
from enclave.settings import Settings
from output_checker.queue import db
from output_checker.queue.web import api, assets, auth, author, errors, oauth, requests, reviews
from output_checker.queue.web.datalab import bp as datalab_bp
from output_checker.queue.web.pages import age_text
from output_checker.queue.web.render import markdown_html
from output_checker.queue.web.signoffs import bp as signoffs_bp
from output_checker.queue.web.state import QueueOptions, install

CONTROL_TEMPLATES = Path(enclave.control.web.__file__).with_name("templates")
# Form fields other than files (comments, a checker record pasted as text) may be this big.
FORM_FIELD_BYTES = 1 << 20


def create_app(
    settings: Settings | None = None,
    *,
    context: Context | None = None,
    testing: bool = False,
    options: QueueOptions | None = None,
) -> Flask:
    """A configured Flask app.

    ``settings`` defaults to ``Settings.load()``; ``context`` to ``open_context(settings)``;
    ``options`` to the defaults, with JupyterHub OAuth when the process runs as a hub service
    (``oauth.configured``). Outside ``testing`` raises SettingsError without a secret key of
    32+ characters, and ControlError / QueueError if a database schema is not current.
    """
    settings = settings or Settings.load()
    secret = (
        (settings.secret_key or secrets.token_hex(32))
        if testing
        else (settings.require_secret_key())
    )
    options = options or QueueOptions(oauth=oauth.configured(os.environ))
    ctx = with_read_cache(context or open_context(settings))
    if not testing:
        db.require_current(ctx.engine)
    limits = options.limits
    app = Flask(__name__)
    own = FileSystemLoader(Path(__file__).with_name("templates"))
    app.jinja_loader = ChoiceLoader([own, FileSystemLoader(CONTROL_TEMPLATES)])
    app.config.update(
        SECRET_KEY=secret,
        TESTING=testing,
        SESSION_COOKIE_NAME="queue_session",
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=security.SESSION_LIFETIME,
        # a session ends 8 hours after login whatever happens (security.session_person), so
        # the cookie is written when the session changes only, not re-signed on every answer
        SESSION_REFRESH_EACH_REQUEST=False,
        # One file and its checker record (large for big tables), plus the form around them;
        # the service then holds each file to limits.max_file_bytes.
        MAX_CONTENT_LENGTH=limits.max_file_bytes + limits.max_manifest_bytes + FORM_FIELD_BYTES,
        MAX_FORM_MEMORY_SIZE=max(limits.max_manifest_bytes, FORM_FIELD_BYTES),
        # Pages send no Referer (Referrer-Policy: no-referrer), so Flask-WTF's HTTPS Referer
        # check would refuse every form; the token and SameSite=Lax remain.
        WTF_CSRF_SSL_STRICT=False,
    )
    install_control(app, WebState(settings, ctx))
    install(app, options)
    security.init_app(app)  # before CSRF: an anonymous POST goes to the login form
    csrf = CSRFProtect(app)
    csrf.exempt(api.bp)  # bearer tokens only, never cookies (see security.gate)
    blueprints = (auth.bp, requests.bp, author.bp, reviews.bp, api.bp, assets.bp, datalab_bp)
    for blueprint in (*blueprints, signoffs_bp):
        app.register_blueprint(blueprint)
    errors.init_app(app)
    app.add_template_filter(markdown_html, "markdown")
    app.add_template_filter(age_text, "age")
    return app
