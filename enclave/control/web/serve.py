"""``enclave serve``: run the web faces with waitress, the embedded default server.

For production behind a TLS-terminating proxy any WSGI server works, e.g.
``gunicorn -w 4 -b 127.0.0.1:8000 'enclave.control.web:create_app()'``.
"""

from __future__ import annotations

import sys

import waitress

from enclave.control.web.app import create_app
from enclave.control.web.state import EXTENSION, WebState
from enclave.settings import Settings


def serve(settings: Settings, *, host: str, port: int) -> int:
    """Serve until interrupted; returns the exit status. Raises SettingsError without a secret
    key and ControlError if the database schema is not current (both before listening)."""
    app = create_app(settings)
    state: WebState = app.extensions[EXTENSION]
    print(f"enclave: serving on http://{host}:{port}/ (register: /register)", file=sys.stderr)
    try:
        waitress.serve(app, host=host, port=port, ident="enclave")
    finally:
        state.context.close()
    return 0
