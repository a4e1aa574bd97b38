"""The one place a ControlError becomes an HTTP response, plus the pages for HTTP errors.

The API answers JSON ``{"error": message, "rule": code}`` with the status of ``STATUS``. A
form POST that set a page to return to (``act`` in ``forms``) is sent back there with the
message flashed, so the person sees what was refused next to the form (a governance rule such
as purpose binding, bad input, a duplicate); a refusal by role or state (PermissionDenied) is
a 403 page instead, and every error of a GET is a page with its status.
"""

from __future__ import annotations

import logging

from flask import Flask, flash, g, jsonify, redirect, render_template, request
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from enclave.control.errors import (
    AuthenticationFailed,
    Conflict,
    ControlError,
    IntegrationError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    RuleViolation,
)
from enclave.control.web.security import API_BLUEPRINT

log = logging.getLogger(__name__)

# Most specific class first; ControlError itself (e.g. an uninitialised schema) is a 400.
STATUS: tuple[tuple[type[ControlError], int], ...] = (
    (InvalidInput, 400),
    (AuthenticationFailed, 401),
    (PermissionDenied, 403),
    (RuleViolation, 403),
    (NotFound, 404),
    (Conflict, 409),
    (IntegrationError, 502),
    (ControlError, 400),
)


def status_of(error: ControlError) -> int:
    """The HTTP status for a refusal of this class."""
    return next(code for kind, code in STATUS if isinstance(error, kind))


def handle_control_error(error: ControlError) -> ResponseReturnValue:
    """Map a refusal from the service layer to a response (see the module docstring)."""
    status = status_of(error)
    log.info("refused %s %s: %s [%s]", request.method, request.path, error.rule, error.detail)
    if request.blueprint == API_BLUEPRINT:
        response = jsonify(error=str(error), rule=error.rule)
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return response, status
    back = g.get("back_url")
    refused_outright = isinstance(error, PermissionDenied | AuthenticationFailed)
    if request.method == "POST" and back and not refused_outright:
        flash(str(error), "error")
        return redirect(back, code=303)
    return render_template("error.html", status=status, message=str(error)), status


def handle_csrf_error(error: CSRFError) -> ResponseReturnValue:
    """A form POST without a valid CSRF token: refused before any view ran."""
    message = "This form has expired or did not come from this site. Reload the page and retry."
    return render_template("error.html", status=400, message=message), 400


def handle_http_error(error: HTTPException) -> ResponseReturnValue:
    """404, 405, 413...: JSON for the API, a plain page otherwise."""
    status = error.code or 500
    message = error.description or error.name
    if request.blueprint == API_BLUEPRINT or request.path.startswith("/api/"):
        return jsonify(error=error.name, rule="http"), status
    return render_template("error.html", status=status, message=message), status


def init_app(app: Flask) -> None:
    """Register the handlers on ``app``."""
    app.register_error_handler(ControlError, handle_control_error)
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(HTTPException, handle_http_error)
