"""The queue's background work: the outbox watcher (bundles become requests) and the release
worker (approved requests are copied out), as daemon threads sharing one stop event.

``output-checker serve`` runs them beside its web app; ``output-checker workers`` runs them
alone (``run_until_signalled``), as their own service in production.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

from enclave.control.context import Context, open_context
from enclave.settings import Settings
from output_checker.queue import db, release, watcher
from output_checker.queue.filetypes import DEFAULT_LIMITS, Limits

JOIN_SECONDS = 30.0  # a release copying a large file finishes its file before it stops


class Workers:
    """The watcher and the release worker over ``context``; ``start`` once, ``stop`` once."""

    def __init__(self, context: Context, limits: Limits = DEFAULT_LIMITS) -> None:
        self.stopping = threading.Event()
        self._threads = [
            threading.Thread(
                target=release.run, args=(context, self.stopping), name="release", daemon=True
            ),
            threading.Thread(
                target=watcher.watch,
                args=(context, self.stopping),
                kwargs={"limits": limits},
                name="outbox-watcher",
                daemon=True,
            ),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Ask both loops to end and wait for them (each at most JOIN_SECONDS)."""
        self.stopping.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=JOIN_SECONDS)


def run_until_signalled(settings: Settings, *, ident: str = "output-checker workers") -> int:
    """Run the workers until SIGTERM or SIGINT; returns 0. Raises ControlError / QueueError
    when a schema is not current, before anything starts."""
    context = open_context(settings)
    try:
        db.require_current(context.engine)
        workers = Workers(context)

        def request_stop(_signum: int, _frame: FrameType | None) -> None:
            workers.stopping.set()

        previous = {
            sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            workers.start()
            print(f"{ident}: outbox watcher and release worker running", file=sys.stderr)
            workers.stopping.wait()
            print(f"{ident}: stopping", file=sys.stderr)
            workers.stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        context.close()
    return 0
