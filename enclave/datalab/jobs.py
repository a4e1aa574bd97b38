"""The data lab's private area of the data directory (``<data_dir>/datalab``): uploaded cohort
files waiting for their evaluation, and one JSON record per upload and per evaluation.

Nothing here is served back or mounted into a research session: the directories are 0700 and
every file 0600, outside the linkage zones and the projects' areas. Each record is written to
a temporary name and renamed into place, so a reader (the web page polling a status) sees the
old record or the new one, never half of one. A new record is linked into place rather than
renamed, so that two submissions of one upload cannot both claim it.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from enclave.datalab.errors import DataLabError

AREA = "datalab"
DIR_MODE = 0o700
Kind = Literal["uploads", "evaluations"]


class AlreadyExists(DataLabError):
    """A record that must be new is already there."""


def check_id(value: str) -> str:
    """``value`` as a canonical UUID: ids become file names, so nothing else is accepted."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise DataLabError("not a data lab id") from None


@dataclass(frozen=True)
class Store:
    """The private area under ``root``."""

    root: Path

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> Store:
        return cls(Path(data_dir) / AREA)

    def _folder(self, kind: str) -> Path:
        folder = self.root / kind
        folder.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        for path in (self.root, folder):  # mkdir's mode is masked by the umask
            path.chmod(DIR_MODE)
        return folder

    def cohort_path(self, upload_id: str) -> Path:
        return self.root / "uploads" / f"{check_id(upload_id)}.csv"

    def _write(self, path: Path, data: bytes, *, new: bool) -> None:
        handle, temporary = tempfile.mkstemp(prefix=".", dir=path.parent)  # mode 0600
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            if new:
                try:
                    os.link(temporary, path)
                except FileExistsError:
                    raise AlreadyExists(f"{path.stem} exists already") from None
            else:
                os.replace(temporary, path)
        finally:
            Path(temporary).unlink(missing_ok=True)

    def write_cohort(self, upload_id: str, data: bytes) -> Path:
        """Store an uploaded cohort file (0600); returns its path."""
        self._folder("uploads")
        path = self.cohort_path(upload_id)
        self._write(path, data, new=True)
        return path

    def destroy_cohort(self, upload_id: str) -> bool:
        """Delete the uploaded cohort file; whether there was one to delete."""
        path = self.cohort_path(upload_id)
        existed = path.exists()
        path.unlink(missing_ok=True)
        return existed

    def save(self, kind: Kind, record: dict[str, Any], *, new: bool = False) -> None:
        """Write ``record`` (keyed by its ``id``) atomically; with ``new``, AlreadyExists if
        a record of that id is there."""
        path = self._folder(kind) / f"{check_id(record['id'])}.json"
        self._write(path, json.dumps(record, sort_keys=True).encode("utf-8"), new=new)

    def load(self, kind: Kind, record_id: str) -> dict[str, Any] | None:
        path = self.root / kind / f"{check_id(record_id)}.json"
        try:
            found: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return found

    def records(self, kind: Kind) -> Iterator[dict[str, Any]]:
        """Every record of ``kind`` (in no particular order)."""
        folder = self.root / kind
        if not folder.is_dir():
            return
        for path in folder.glob("*.json"):
            found = self.load(kind, path.stem)
            if found is not None:
                yield found


__all__ = ["AREA", "AlreadyExists", "Store", "check_id"]
