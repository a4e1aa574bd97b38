"""Outputs the checker has no table rules for: custom files, record-level data, unknown types.

Nothing is passed without rules: an unknown or custom output goes to human review, and
record-level data (``microdata``) is held to the project's microdata policy first
(``output_checker.record_level``): refused when it fails, human review when it holds.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from output_checker.errors import InputError
from output_checker.parameters import Parameters
from output_checker.record_level import RECORD_LEVEL, check_records, read_records
from output_checker.results import envelope
from output_checker.status import Status


@dataclass(frozen=True)
class FileResult:
    """Verdict on an output that only a person can judge (or that must never leave)."""

    path: Path
    output_type: str
    sha256: str
    status: Status
    reason: str
    parameters: Parameters
    created: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())

    def summary(self) -> str:
        return f"{self.status.label}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {
            **envelope(
                "file",
                self.output_type,
                self.status,
                self.summary(),
                [self.reason],
                self.created,
                self.parameters,
            ),
            "output": {
                "format": self.path.suffix.lstrip(".") or "bin",
                "sha256": self.sha256,
                "name": self.path.name,
            },
        }


def check_file(
    path: str | Path, output_type: str = "custom", parameters: Parameters | None = None
) -> FileResult:
    """Record a file output with its hash: ``review`` unless it is refused outright."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"output file not found: {file}")
    digest = hashlib.sha256()
    with file.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    used = parameters or Parameters()
    if output_type == RECORD_LEVEL:
        status, reason = check_records(read_records(file), used)
    else:
        status, reason = Status.REVIEW, f"no automated rules for output type {output_type!r}"
    return FileResult(file, output_type, digest.hexdigest(), status, reason, used)
