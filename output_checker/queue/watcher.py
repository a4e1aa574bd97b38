"""The outbox watcher: every finalised bundle in a project's outbox becomes a pending request
owned by its author, exactly once.

Research sessions have no network, so the researcher library writes bundles into
``<data_dir>/projects/<slug>/outbox/<user>/<bundle>/`` and marks them ``finalised``. This
process, on the host, polls the outboxes (``scan`` once, ``watch`` in a loop). The outbox is
untrusted input: ``bundles.read_bundle`` refuses anything unsafe, and a refused bundle is
recorded as consumed with its reason (and audited), so it is neither retried nor silently
dropped. The watcher never writes into the outbox.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from sqlalchemy import select

from enclave.control.context import Context
from enclave.control.db import transaction
from enclave.control.errors import ControlError
from enclave.control.models import Project
from output_checker.queue.bundles import BundleRef, finalised_bundles, read_bundle
from output_checker.queue.errors import Conflict
from output_checker.queue.filetypes import DEFAULT_LIMITS, Limits
from output_checker.queue.service import intake

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WatchOutcome:
    """What happened to one bundle in a scan."""

    ref: BundleRef
    accepted: bool
    request_id: str | None
    reason: str = ""


def scan(ctx: Context, limits: Limits = DEFAULT_LIMITS) -> list[WatchOutcome]:
    """Consume every finalised bundle not consumed before; returns what became of each.

    Bundles of projects unknown to the control plane are left alone.
    """
    with transaction(ctx.engine, readonly=True) as session:
        projects = set(session.scalars(select(Project.slug)))
    outcomes: list[WatchOutcome] = []
    for ref in finalised_bundles(ctx.data_dir):
        if ref.project not in projects or intake.consumed(ctx, ref):
            continue
        try:
            created = intake.accept_bundle(ctx, read_bundle(ctx.data_dir, ref, limits), limits)
        except Conflict:
            continue  # another watcher consumed it first
        except ControlError as error:
            if intake.refuse_bundle(ctx, ref, str(error)):
                log.info("refused bundle %s/%s/%s: %s", ref.project, ref.owner, ref.name, error)
                outcomes.append(WatchOutcome(ref, False, None, str(error)))
            continue
        log.info("bundle %s/%s/%s became request %s", ref.project, ref.owner, ref.name, created.id)
        outcomes.append(WatchOutcome(ref, True, created.id))
    return outcomes


def watch(
    ctx: Context,
    stop: threading.Event,
    *,
    interval: float = 5.0,
    limits: Limits = DEFAULT_LIMITS,
) -> None:
    """Scan every ``interval`` seconds until ``stop`` is set. A failing scan is logged and
    retried at the next tick; it never stops the loop."""
    while not stop.is_set():
        try:
            scan(ctx, limits)
        except Exception:  # the database may be briefly unavailable: keep watching
            log.exception("outbox scan failed")
        stop.wait(interval)
