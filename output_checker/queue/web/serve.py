"""``output-checker serve``: the queue's web faces on waitress (the embedded default), with
the outbox watcher and the release worker running beside them, so one command runs the whole
airlock standalone.

In production behind a TLS-terminating proxy, run the app under any WSGI server
(``gunicorn -w 4 -b 127.0.0.1:8100 'output_checker.queue.web:create_app()'``) and the
workers once, as their own service (``output-checker workers``).
"""

from __future__ import annotations

import sys

import waitress

from enclave.control.web.state import EXTENSION, WebState
from enclave.settings import Settings
from output_checker.queue.web.app import create_app
from output_checker.queue.web.state import EXTENSION as QUEUE_EXTENSION
from output_checker.queue.web.state import QueueOptions
from output_checker.queue.web.workers import Workers


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: bool = True,
    url_prefix: str = "",
    ident: str = "output-checker",
) -> int:
    """Serve until interrupted; returns the exit status. Raises SettingsError without a secret
    key and ControlError / QueueError if a schema is not current (before listening).
    ``url_prefix``: the path the app is mounted under behind a proxy (waitress strips it and
    sets ``SCRIPT_NAME``, so the app's links carry it)."""
    app = create_app(settings)
    state: WebState = app.extensions[EXTENSION]
    options: QueueOptions = app.extensions[QUEUE_EXTENSION]
    background = Workers(state.context, options.limits) if workers else None
    if background is not None:
        background.start()
    print(
        f"{ident}: serving the review queue on http://{host}:{port}{url_prefix}/", file=sys.stderr
    )
    try:
        waitress.serve(app, host=host, port=port, url_prefix=url_prefix, ident=ident)
    finally:
        if background is not None:
            background.stop()
        state.context.close()
    return 0
