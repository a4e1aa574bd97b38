"""What the web faces share per application: settings and the service Context, kept on the app
(``app.extensions``) by ``create_app`` rather than in module globals."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app

from enclave.control.context import Context
from enclave.settings import Settings

EXTENSION = "enclave"


@dataclass(frozen=True)
class WebState:
    """The settings the app was made from and the Context every service call receives."""

    settings: Settings
    context: Context


def install(app: Flask, state: WebState) -> None:
    """Attach ``state`` to ``app`` (called once, by ``create_app``)."""
    app.extensions[EXTENSION] = state


def web_state() -> WebState:
    """The current app's WebState; only valid inside an app or request context."""
    state: WebState = current_app.extensions[EXTENSION]
    return state


def context() -> Context:
    """The service Context of the current app."""
    return web_state().context
