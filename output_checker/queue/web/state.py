"""What the queue's web app keeps per application, next to the control plane's ``WebState``
(settings and service Context, which the shared login gate reads): the queue's own options."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from flask import Flask, current_app

from output_checker.queue.filetypes import DEFAULT_LIMITS, Limits
from output_checker.queue.web.oauth import OAuthClient

EXTENSION = "output_checker.queue"


@dataclass(frozen=True)
class QueueOptions:
    """``limits``: file size limits of uploads (the request size limit follows from them);
    ``oauth``: JupyterHub's OAuth client, which replaces the local login when set;
    ``service_target``: how long a request may wait for its reviews before the overview
    flags it (ONS SRS: five working days)."""

    limits: Limits = DEFAULT_LIMITS
    oauth: OAuthClient | None = None
    service_target: timedelta = timedelta(days=5)


def install(app: Flask, options: QueueOptions) -> None:
    """Attach ``options`` to ``app`` (once, by ``create_app``)."""
    app.extensions[EXTENSION] = options


def options() -> QueueOptions:
    """The current app's QueueOptions (inside an app or request context)."""
    found: QueueOptions = current_app.extensions[EXTENSION]
    return found
