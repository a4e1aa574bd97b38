"""The one place a refusal from the queue's (or the control plane's) service layer becomes an
HTTP response.

A workflow conflict (``WorkflowError``: the request's state does not allow the action, or a
precondition such as a required comment is missing) is a 409; a refusal by role or relation
to the project (``PermissionDenied``) a 403; a snapshot that no longer matches its hash
(``IntegrityFailure``) a 500 that is logged loudly. The rest follows the control plane's
table (``enclave.control.web.errors.STATUS``). The API answers ``{"error", "rule"}``; a form
that named a page to return to gets the message flashed there, except refusals by role,
which are a 403 page. CSRF and HTTP errors use the control plane's handlers.
"""

from __future__ import annotations

import logging

from flask import Flask, flash, g, jsonify, redirect, render_template, request
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from enclave.control.errors import AuthenticationFailed, ControlError
from enclave.control.errors import PermissionDenied as ControlPermissionDenied
from enclave.control.web.errors import handle_csrf_error, handle_http_error
from enclave.control.web.errors import status_of as control_status
from enclave.control.web.security import API_BLUEPRINT
from output_checker.queue.errors import IntegrityFailure, WorkflowError

log = logging.getLogger(__name__)

QUEUE_STATUS: tuple[tuple[type[ControlError], int], ...] = (
    (WorkflowError, 409),
    (IntegrityFailure, 500),
)


def status_of(error: ControlError) -> int:
    """The HTTP status for a refusal of this class."""
    for kind, code in QUEUE_STATUS:
        if isinstance(error, kind):
            return code
    return control_status(error)


def handle_error(error: ControlError) -> ResponseReturnValue:
    """Map a refusal to a response (see the module docstring)."""
    status = status_of(error)
    if status >= 500:
        log.error("%s %s failed: %s [%s]", request.method, request.path, error, error.rule)
    else:
        log.info("refused %s %s: %s [%s]", request.method, request.path, error.rule, error)
    if request.blueprint == API_BLUEPRINT:
        response = jsonify(error=str(error), rule=error.rule)
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return response, status
    back = g.get("back_url")
    outright = isinstance(error, ControlPermissionDenied | AuthenticationFailed) or status >= 500
    if request.method == "POST" and back and not outright:
        flash(str(error), "error")
        return redirect(back, code=303)
    return render_template("error.html", status=status, message=str(error)), status


def init_app(app: Flask) -> None:
    """Register the handlers on ``app``."""
    app.register_error_handler(ControlError, handle_error)
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(HTTPException, handle_http_error)
