"""Release-request bundles in the outbox, in the queue's bundle format (bundle_version 1).

A bundle is a flat directory ``<outbox>/<bundle>/`` holding every output file, ``manifest.json``
(title, groups, and per file its name, kind, group, sha256, checker record, recipe and
exception request), supporting files (ACRO's ``results.json``, ``session.json`` with each
output's command, summary and provenance, optionally ``results.xlsx``), and an empty
``finalised`` marker written last. It is written into a hidden temporary directory of the
outbox, renamed into place in one step, and only then marked: the watcher never sees a partial
bundle. This module writes the format from its description; it imports nothing from the queue.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from enclave.analysis.errors import AnalysisError
from enclave.analysis.outputs import Output
from output_checker import CheckerError
from output_checker.acro_interop import NAMESPACE, to_acro_results

BUNDLE_VERSION = 1
MANIFEST = "manifest.json"
MARKER = "finalised"
RESULTS = "results.json"
SESSION = "session.json"
XLSX = "results.xlsx"
# The queue's rules for what it accepts (kept in step with the queue's documentation).
ALLOWED_TYPES = frozenset({"csv", "xlsx", "json", "png", "svg", "pdf", "html", "txt", "md"})
FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9 ._()+,=-]*$")
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_BUNDLE_BYTES = 64 * 1024 * 1024
MAX_FILES = 100
MAX_MANIFEST_BYTES = 32 * 1024 * 1024
MAX_TITLE = 200
DIRECTORY_MODE = 0o755  # the watcher on the host reads it; the outbox itself is per user


@dataclass(frozen=True)
class BundleContent:
    """A bundle in memory: its files (name, bytes) in order and its manifest."""

    files: tuple[tuple[str, bytes], ...]
    manifest: dict[str, Any]

    def manifest_bytes(self) -> bytes:
        return json.dumps(self.manifest, indent=1, allow_nan=False).encode("utf-8")


def check_file_name(name: str) -> str:
    """``name`` if the queue accepts it as a file name and type, else AnalysisError."""
    if len(name) > 200 or ".." in name or not FILE_NAME.match(name):
        raise AnalysisError(f"file name {name[:60]!r} is not allowed in a bundle")
    kind = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if kind not in ALLOWED_TYPES:
        allowed = ", ".join(sorted(ALLOWED_TYPES))
        raise AnalysisError(f"{name}: type {kind or '(none)'!r} cannot be released ({allowed})")
    return name


def _uid(output: Output, label: str, recorded: int) -> str:
    return output.name if recorded == 1 else f"{output.name}_{label}"


def _acro_document(outputs: Sequence[Output]) -> dict[str, Any]:
    """ACRO 1.0.2's results.json for every recorded file, keyed by the output's name (or
    ``<name>_<label>`` for outputs of several files), with comments and exceptions."""
    records, where = [], []
    for output in outputs:
        recorded = [(f, n) for f, n in zip(output.files, output.file_names(), strict=True)
                    if f.record is not None]  # fmt: skip
        for file, name in recorded:
            records.append(file.record)
            where.append((output, _uid(output, file.label, len(recorded)), name))
    # to_acro_results reads a table's request only; other kinds' requests have other keys,
    # so they go in without it and the full record is put back under the namespace after
    exported = [r if r["kind"] == "table" else {k: v for k, v in r.items() if k != "request"}
                for r in records if r is not None]  # fmt: skip
    try:
        document = to_acro_results(exported)
    except CheckerError as error:
        raise AnalysisError(f"results.json cannot be written: {error}") from None
    results: dict[str, Any] = {}
    for position, (output, uid, name) in enumerate(where):
        entry = document["results"][f"output_{position}"]
        entry[NAMESPACE] = records[position]
        entry["uid"] = uid
        entry["files"][0]["name"] = name
        entry["command"] = output.command
        entry["comments"] = list(output.comments)
        entry["exception"] = output.exception
        if entry[NAMESPACE]["kind"] == "file":
            entry["type"] = "custom"
        results[uid] = entry
    document["results"] = results
    return document


def _session_document(outputs: Sequence[Output], project: str) -> dict[str, Any]:
    return {
        "tool": "enclave.analysis",
        "project": project,
        "created": dt.datetime.now(dt.UTC).isoformat(),
        "outputs": [
            {
                "name": o.name,
                "method": o.method,
                "command": o.command,
                "status": o.status.label,
                "summary": o.summary,
                "provenance": o.provenance.to_dict(),
                "files": o.file_names(),
                "comments": list(o.comments),
                "exception": o.exception,
                "created": o.created,
            }
            for o in outputs
        ],
    }


def _workbook(outputs: Sequence[Output]) -> bytes:
    """Every CSV table on its own sheet (a convenience copy for reviewers, like ACRO's)."""
    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        used: set[str] = set()
        for output in outputs:
            for file, name in zip(output.files, output.file_names(), strict=True):
                if file.extension != "csv":
                    continue
                sheet = name[:-4][:31]
                while sheet in used:
                    sheet = sheet[:28] + secrets.token_hex(1)
                used.add(sheet)
                pd.read_csv(io.BytesIO(file.data)).to_excel(writer, sheet_name=sheet, index=False)
    return buffer.getvalue()


def build(
    outputs: Sequence[Output], *, title: str, project: str, xlsx: bool = False
) -> BundleContent:
    """The bundle of ``outputs`` in memory, checked against the queue's limits.

    Raises AnalysisError for an empty session, a bad title or file name, or a bundle over the
    queue's limits (nothing is written).
    """
    if not outputs:
        raise AnalysisError("there are no outputs to finalise")
    if not isinstance(title, str) or len(title.strip()) > MAX_TITLE or "\x00" in title:
        raise AnalysisError(f"the title must be text of at most {MAX_TITLE} characters")
    files: list[tuple[str, bytes]] = []
    entries: list[dict[str, Any]] = []
    groups: dict[str, dict[str, str]] = {}
    for output in outputs:
        groups[output.name] = {
            "context": "\n".join(output.comments),
            "controls": f"{output.summary}",
        }
        for file, name in zip(output.files, output.file_names(), strict=True):
            entry: dict[str, Any] = {
                "name": check_file_name(name),
                "kind": "output",
                "group": output.name,
                "sha256": hashlib.sha256(file.data).hexdigest(),
                "exception": output.exception,
            }
            if file.record is not None:
                entry["record"] = file.record
            if file.recipe is not None:
                entry["recipe"] = file.recipe
            entries.append(entry)
            files.append((name, file.data))
    supporting = [
        (RESULTS, _json(_acro_document(outputs))),
        (SESSION, _json(_session_document(outputs, project))),
    ]
    if xlsx:
        supporting.append((XLSX, _workbook(outputs)))
    for name, data in supporting:
        entries.append({"name": name, "kind": "supporting", "group": "session",
                        "sha256": hashlib.sha256(data).hexdigest()})  # fmt: skip
        files.append((name, data))
    groups["session"] = {
        "context": "The session's record of its outputs (ACRO's results.json, session.json).",
        "controls": "Written by enclave.analysis; supporting files, never released.",
    }
    manifest = {"bundle_version": BUNDLE_VERSION, "title": title.strip(), "groups": groups,
                "files": entries}  # fmt: skip
    content = BundleContent(tuple(files), manifest)
    _check_limits(content)
    return content


def _json(document: Any) -> bytes:
    try:
        return json.dumps(document, indent=1, allow_nan=False).encode("utf-8")
    except ValueError as error:
        raise AnalysisError(f"a bundle file cannot be written as JSON: {error}") from None


def _check_limits(content: BundleContent) -> None:
    names = [name for name, _ in content.files]
    if len(set(names)) != len(names) or {MANIFEST, MARKER} & set(names):
        raise AnalysisError("two files of the bundle would have the same name")
    if len(names) > MAX_FILES:
        raise AnalysisError(f"{len(names)} files is more than a bundle may hold ({MAX_FILES})")
    total = 0
    for name, data in content.files:
        if not data:
            raise AnalysisError(f"{name} is empty")
        if len(data) > MAX_FILE_BYTES:
            raise AnalysisError(f"{name} is larger than {MAX_FILE_BYTES} bytes")
        total += len(data)
    if total > MAX_BUNDLE_BYTES:
        raise AnalysisError(f"the files add up to more than {MAX_BUNDLE_BYTES} bytes")
    if len(content.manifest_bytes()) > MAX_MANIFEST_BYTES:
        raise AnalysisError(f"the manifest is larger than {MAX_MANIFEST_BYTES} bytes")


def _write_new(path: Path, data: bytes) -> None:
    with path.open("xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def bundle_name() -> str:
    """A fresh bundle directory name: UTC time and a random suffix."""
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def write(outbox: Path, content: BundleContent, name: str | None = None) -> Path:
    """Write ``content`` as ``<outbox>/<name>/`` atomically; returns the bundle's path.

    Raises AnalysisError if the outbox cannot be written or the name is taken; a failed write
    leaves nothing behind.
    """
    outbox = Path(outbox)
    target = outbox / (name or bundle_name())
    temporary: Path | None = None
    renamed = False
    try:
        outbox.mkdir(parents=True, exist_ok=True)
        temporary = Path(tempfile.mkdtemp(prefix=".tmp-", dir=outbox))
        for file_name, data in content.files:
            _write_new(temporary / file_name, data)
        _write_new(temporary / MANIFEST, content.manifest_bytes())
        _fsync_dir(temporary)
        temporary.chmod(DIRECTORY_MODE)
        if target.exists():
            raise FileExistsError(f"{target.name} already exists")
        os.rename(temporary, target)
        temporary, renamed = None, True
        _fsync_dir(outbox)
        _write_new(target / MARKER, b"")  # last: only now may the watcher take it
        _fsync_dir(target)
    except OSError as error:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
        if renamed and not (target / MARKER).exists():
            with contextlib.suppress(OSError):
                shutil.rmtree(target)  # never marked: the watcher never took it
        raise AnalysisError(f"the bundle cannot be written to {outbox}: {error}") from None
    return target
