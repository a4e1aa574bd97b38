"""Static assets: the queue's own (``static/``, Flask's ``static`` endpoint) and the control
plane's stylesheet and icon, shared rather than copied, served from its package."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, send_from_directory
from flask.typing import ResponseReturnValue

import enclave.control.web
from enclave.control.web.security import public

bp = Blueprint("assets", __name__)

CONTROL_STATIC = Path(enclave.control.web.__file__).with_name("static")
SHARED = frozenset({"enclave.css", "favicon.svg"})


@bp.get("/assets/<name>")
@public
def shared(name: str) -> ResponseReturnValue:
    """One of the control plane's assets (``SHARED`` only; anything else is a 404)."""
    if name not in SHARED:
        abort(404)
    return send_from_directory(CONTROL_STATIC, name, max_age=3600)
