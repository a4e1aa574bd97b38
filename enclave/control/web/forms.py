"""Helpers of the admin views: read form fields, run one service call, flash, redirect.

A view parses its input and hands ``act`` a zero-argument call of one service function. Parsing
happens inside that call too, so a malformed field and a refused rule reach the person the
same way: a ControlError, flashed by the one error handler next to the form it came from.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from flask import flash, g, redirect, request
from werkzeug.wrappers import Response

from enclave.control.errors import ControlError
from enclave.control.hub import sync_hub
from enclave.control.web.state import web_state

T = TypeVar("T")
log = logging.getLogger(__name__)


def field(name: str) -> str:
    """A form field, stripped; empty when absent (the service says which are required)."""
    return request.form.get(name, "").strip()


def listed(name: str) -> list[str]:
    """Every value of a repeated field (checkboxes, multi-selects), blanks dropped."""
    return [value.strip() for value in request.form.getlist(name) if value.strip()]


def split_list(text: str) -> list[str]:
    """``"a, b c"`` -> ``["a", "b", "c"]``: lists typed into one text box."""
    return [part for part in text.replace(",", " ").split() if part]


def actor() -> str:
    """The logged-in person's email, as the service layer's ``actor``."""
    email: str = g.user.email
    return email


def act(
    call: Callable[[], T],
    *,
    back: str,
    done: Callable[[T], str],
    to: Callable[[T], str] | None = None,
    mirror: bool = False,
) -> Response:
    """Run ``call``; on success flash ``done(result)`` and redirect (303) to ``to(result)`` or
    ``back``. A ControlError propagates to the error handler, which flashes it and redirects
    to ``back`` (or answers 403 for a refusal by role). With ``mirror``, memberships are then
    mirrored to the hub when one is configured."""
    g.back_url = back
    result = call()
    flash(done(result), "ok")
    if mirror and (warning := mirror_hub(actor())):
        flash(warning, "warning")
    return redirect(to(result) if to else back, code=303)


def mirror_hub(who: str) -> str | None:
    """Reconcile hub groups after a membership-changing action, if a hub is configured.

    Returns a warning when the hub could not be updated (the change in the control plane
    stands, and the next sync catches up), else None.
    """
    state = web_state()
    if not state.settings.hub_url:
        return None
    try:
        sync_hub(state.context, state.settings, actor=who)
    except ControlError as error:
        log.warning("hub not updated: %s", error)
        return f"JupyterHub not updated yet: {error}"
    return None
