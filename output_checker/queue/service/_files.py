"""Files on their way in: validation of name, type, size and content, the checker record and
the recipe, the snapshot, and the server's verdict. Private to the service package.

Everything here runs *before* the write transaction: hashing, snapshotting and re-deriving a
table can take seconds, and the control plane's writes are serialised. The transaction then
re-checks that the snapshot it records is the one that was checked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from enclave.control.context import Context
from output_checker.parameters import Parameters
from output_checker.queue import models as m
from output_checker.queue.errors import InvalidInput
from output_checker.queue.filetypes import DEFAULT_LIMITS, Limits, check_file, check_record
from output_checker.queue.recheck import Verdict, recheck_output
from output_checker.queue.recipes import Recipe, parse_recipe, project_data_dir
from output_checker.queue.service import ledger
from output_checker.queue.service._base import clean_group, clean_text, dumps
from output_checker.queue.storage import BlobStore, sha256_of
from output_checker.queue.workflow import FileKind

MAX_EXCEPTION = 5_000


@dataclass(frozen=True)
class PreparedFile:
    """A file that passed every input rule, with its snapshot's name."""

    name: str
    kind: FileKind
    group: str
    filetype: str
    sha256: str
    size: int
    record: dict[str, Any] | None
    recipe: Recipe | None
    exception: str
    data: bytes


def read_upload(data: bytes | BinaryIO, limits: Limits) -> bytes:
    """The bytes of an upload, reading at most one byte past the limit (so an endless stream
    cannot fill memory); the size rule itself is applied by ``check_file``."""
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    return bytes(data.read(limits.max_file_bytes + 1))


def _kind(kind: str) -> FileKind:
    try:
        return FileKind(kind)
    except ValueError:
        raise InvalidInput(
            f"kind must be output or supporting, not {kind!r}", rule="bad_kind"
        ) from None


def prepare_file(
    name: str,
    data: bytes | BinaryIO,
    *,
    kind: str = "output",
    group: str = "default",
    record: Mapping[str, Any] | None = None,
    recipe: Mapping[str, Any] | None = None,
    exception: str = "",
    limits: Limits = DEFAULT_LIMITS,
) -> PreparedFile:
    """Apply every input rule to one file; raises InvalidInput naming the first problem."""
    content = read_upload(data, limits)
    filetype = check_file(name, content, limits)
    file_kind = _kind(kind)
    sha256 = sha256_of(content)
    if file_kind is FileKind.SUPPORTING and (record is not None or recipe is not None):
        raise InvalidInput(
            f"{name}: supporting files carry no checker record or recipe", rule="bad_record"
        )
    parsed_recipe = parse_recipe(recipe) if recipe is not None else None
    if parsed_recipe is not None and filetype != "csv":
        raise InvalidInput(f"{name}: a recipe describes a CSV table", rule="bad_recipe")
    return PreparedFile(
        name=name,
        kind=file_kind,
        group=clean_group(group),
        filetype=filetype,
        sha256=sha256,
        size=len(content),
        record=check_record(name, record, sha256) if record is not None else None,
        recipe=parsed_recipe,
        exception=clean_text(exception, "exception request", MAX_EXCEPTION, required=False),
        data=content,
    )


def verdict(
    ctx: Context,
    project: str,
    parameters: Parameters,
    content: bytes,
    filetype: str,
    record: Mapping[str, Any] | None,
    recipe: Recipe | None,
) -> Verdict:
    """The server's verdict on an output, re-derived from the project's data when it can, and
    audited against everything the project has released (``ledger``)."""
    found = recheck_output(
        content, filetype, record, recipe, parameters, project_data_dir(ctx.data_dir, project)
    )
    return ledger.combine(found, ledger.audit_output(ctx, project, found, parameters))


def recheck_rows(
    ctx: Context,
    project: str,
    parameters: Parameters,
    rows: Sequence[m.File],
) -> dict[str, tuple[str, Verdict]]:
    """Re-read each output row's snapshot (IntegrityFailure if it no longer has its hash),
    re-run the server's checks on it and audit it against the project's ledger: file uuid ->
    (sha256 checked, verdict). The rows would be released together, so each is also audited
    against the others."""
    blobs = BlobStore.for_data_dir(ctx.data_dir)
    found = {
        row.uuid: recheck_output(
            blobs.read(row.sha256),
            row.filetype,
            json.loads(row.record) if row.record else None,
            parse_recipe(json.loads(row.recipe)) if row.recipe else None,
            parameters,
            project_data_dir(ctx.data_dir, project),
        )
        for row in rows
    }
    names = {row.uuid: row.name for row in rows}
    audited = ledger.audit_outputs(ctx, project, found, names, parameters)
    return {
        row.uuid: (row.sha256, ledger.combine(found[row.uuid], audited[row.uuid])) for row in rows
    }


def store(data_dir: Path, prepared: PreparedFile) -> None:
    """Snapshot the prepared file (idempotent: the store is content-addressed)."""
    BlobStore.for_data_dir(data_dir).put(prepared.data)


def apply_verdict(row: m.File, verdict: Verdict | None, ctx: Context) -> None:
    """Store the server's verdict on a file row (None: a supporting file, no verdict)."""
    row.automated_status = verdict.status.value if verdict else None
    row.recheck = verdict.recheck.value if verdict else None
    row.check_summary = verdict.summary if verdict else ""
    row.ledger_report = dumps(verdict.ledger_report) if verdict and verdict.ledger_report else None
    row.ledger_sha256 = verdict.ledger_sha256 if verdict else None
    row.checked_at = ctx.now() if verdict else None
