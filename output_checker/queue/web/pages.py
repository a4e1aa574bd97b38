"""Reads a page needs that take more than one service call, composed in one place so the
views stay one line of service each: a request page (the blinded request and its audited
view), a file's bytes at one of its versions, and how each file type is shown.

Everything here goes through the queue's service layer, which decides who may see what and
audits it; the only other read is an earlier snapshot from the content-addressed store,
named by a hash the service returned to this viewer and verified on read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from enclave.control.context import Context
from output_checker.queue import service
from output_checker.queue.errors import NotFound
from output_checker.queue.storage import BlobStore
from output_checker.queue.views import FileContent, FileView, RequestDetail, RequestSummary
from output_checker.queue.web import render
from output_checker.queue.workflow import Status

# How each allowed file type is shown in the browser; anything else is not viewable there.
DISPLAY = {
    "csv": "table",
    "png": "image",
    "svg": "frame",
    "html": "frame",
    "md": "markdown",
    "txt": "text",
    "json": "json",
}
# The media type a viewable file is served with inside the page (never as a download).
CONTENT_TYPES = {
    "csv": "text/plain; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
    "md": "text/plain; charset=utf-8",
    "json": "text/plain; charset=utf-8",
    "png": "image/png",
    "svg": "image/svg+xml",
    "html": "text/html; charset=utf-8",
}
REVIEW_STATUSES = frozenset({Status.SUBMITTED, Status.PARTIALLY_REVIEWED, Status.REVIEWED})


def request_page(ctx: Context, actor: str, request_id: str) -> RequestDetail:
    """The request as ``actor`` may see it, with the page view audited."""
    return service.view_request(ctx, actor, request_id)


def file_of(detail: RequestDetail, file_id: str) -> FileView:
    """The file ``file_id`` of the request; NotFound otherwise."""
    for file in detail.files:
        if file.id == str(file_id):
            return file
    raise NotFound(f"unknown file {file_id!r} in this request", rule="unknown_file")


def file_bytes(
    ctx: Context, actor: str, request_id: str, file_id: str, version: str | None = None
) -> FileContent:
    """A file's bytes for viewing (audited by ``view_file``): its current snapshot, or the
    earlier snapshot ``version`` (a sha256 among the file's versions as the service lists
    them for this viewer), read from the store and verified against that hash."""
    current = service.view_file(ctx, actor, request_id, file_id)
    if not version or version == current.sha256:
        return current
    file = file_of(service.get_request(ctx, actor, request_id), file_id)
    if version not in {v.sha256 for v in file.versions}:
        raise NotFound(f"{file.name} has no version {version[:12]}", rule="unknown_version")
    data = BlobStore.for_data_dir(ctx.data_dir).read(version)
    return FileContent(request_id, file_id, file.name, file.filetype, version, data)


def shown(file: FileView, data: bytes) -> dict[str, Any]:
    """What the file page shows for ``file``: ``display`` (table, image, frame, markdown,
    text, json or none) and what that display needs. Checkers' views carry the record, so
    their tables are highlighted; the author's side never receives it."""
    display = DISPLAY.get(file.filetype, "none")
    out: dict[str, Any] = {"display": display}
    if display == "table":
        out["grid"] = render.table_grid(data, file.record)
        out["protection"] = render.suppression_summary(file.record)
    elif display == "markdown":
        out["html"] = render.markdown_html(render.plain_text(data)[0])
    elif display == "text":
        out["text"], out["cut"] = render.plain_text(data)
    elif display == "json":
        out["text"], out["cut"] = render.json_text(data)
    return out


def table_layout(file: FileView) -> tuple[int, int]:
    """(row-label columns, header rows) of a table file, from its record or recipe."""
    request = (file.record or {}).get("request") or {}
    grouping = (file.recipe or {}).get("grouping") or {}
    index = request.get("index") or grouping.get("index") or [None]
    columns = request.get("columns") or grouping.get("columns") or []
    return len(index), len(columns) + 1 if len(columns) >= 2 else 1


@dataclass(frozen=True)
class Ages:
    """How long a request has waited: since its first submission and in its status now."""

    since_submission: timedelta | None
    in_status: timedelta
    overdue: bool  # under review for longer than the service target


def ages(summary: RequestSummary, now: datetime, target: timedelta) -> Ages:
    """The request's ages at ``now``; overdue when it has been with the reviewers longer
    than ``target`` since it was last handed to them."""
    since = now - summary.first_submitted_at if summary.first_submitted_at else None
    in_status = now - summary.status_changed_at
    waiting = now - summary.last_submitted_at if summary.last_submitted_at else None
    overdue = summary.status in REVIEW_STATUSES and waiting is not None and waiting > target
    return Ages(since, in_status, overdue)


def age_text(span: timedelta | None) -> str:
    """``3 d 4 h``, ``5 h 2 min``, ``40 min``; ``–`` for None."""
    if span is None:
        return "–"
    minutes = max(int(span.total_seconds() // 60), 0)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {mins} min"
    return f"{mins} min"
