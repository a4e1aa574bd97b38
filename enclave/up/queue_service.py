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
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from types import FrameType

import waitress

from enclave.control.web.state import EXTENSION, WebState
from enclave.settings import Settings
from output_checker.queue import release, watcher
from output_checker.queue.web.app import create_app
from output_checker.queue.web.state import EXTENSION as QUEUE_EXTENSION
from output_checker.queue.web.state import QueueOptions


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
    app = create_app(settings)
    state: WebState = app.extensions[EXTENSION]
    options: QueueOptions = app.extensions[QUEUE_EXTENSION]
    stop = threading.Event()
    threads = [
        threading.Thread(target=release.run, args=(state.context, stop), daemon=True),
        threading.Thread(
            target=watcher.watch,
            args=(state.context, stop),
            kwargs={"limits": options.limits},
            daemon=True,
        ),
    ]
    for thread in threads:
        thread.start()
    signal.signal(signal.SIGTERM, _interrupt)
    print(f"review queue: serving {prefix}/ on 127.0.0.1:{args.port}", file=sys.stderr)
    try:
        waitress.serve(
            app, host="127.0.0.1", port=args.port, url_prefix=prefix, ident="review-queue"
        )
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        state.context.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
