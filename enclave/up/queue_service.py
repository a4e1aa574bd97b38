"""The review queue as a JupyterHub service: ``python -m enclave.up.queue_service``.

The hub starts it (``enclave.hub.config.queue_service``) with ``JUPYTERHUB_API_TOKEN``,
``JUPYTERHUB_CLIENT_ID`` and ``JUPYTERHUB_SERVICE_PREFIX`` in its environment, so the app logs
people in through the hub's OAuth with PKCE (``output_checker.queue.web.oauth``). The proxy
forwards ``/services/review-queue/...`` unchanged; waitress's ``url_prefix`` strips the prefix
and sets ``SCRIPT_NAME`` so the app's links carry it. The outbox watcher and the release
worker run beside the app in this process, as in ``output-checker serve``. The Flask secret
key is read from a 0600 file, never from the command line or the environment.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from types import FrameType

from enclave.settings import Settings
from output_checker.queue.web.serve import serve


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # the hub stops services with SIGTERM: shut down as for Ctrl-C


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="enclave.up.queue_service")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret-key-file", type=Path, required=True)
    args = parser.parse_args(argv)
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/").rstrip("/")
    secret = args.secret_key_file.read_text(encoding="utf-8").strip()
    settings = replace(Settings.load(), secret_key=secret)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return serve(
            settings, host="127.0.0.1", port=args.port, url_prefix=prefix, ident="review-queue"
        )
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
