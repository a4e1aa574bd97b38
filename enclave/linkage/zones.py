"""The zones on disk and who may read them (architecture: "zones on disk").

``<data_dir>/linkage/`` holds identifiers, the person index, models and reports: owner-only
(0700), never mounted into research sessions. ``<data_dir>/content/`` holds linked content
keyed by record keys, never identifiers (0750). ``<data_dir>/keys/`` holds the per-project
key files (0700, files 0600). ``<data_dir>/projects/<slug>/data/`` is a project's research
extract, made read-only once written.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

LINKAGE_MODE = 0o700
CONTENT_MODE = 0o750
KEYS_MODE = 0o700


@dataclass(frozen=True)
class Zones:
    """The directories of one installation, from its data directory."""

    data_dir: Path

    @property
    def linkage(self) -> Path:
        return self.data_dir / "linkage"

    @property
    def content(self) -> Path:
        return self.data_dir / "content"

    @property
    def keys(self) -> Path:
        return self.data_dir / "keys"

    def identifiers(self, source: str) -> Path:
        """Standardised identifiers of ``source`` (Parquet)."""
        return self.linkage / "identifiers" / f"{source}.parquet"

    @property
    def sources_file(self) -> Path:
        """Which identifier sources are current, with versions (JSON)."""
        return self.linkage / "sources.json"

    @property
    def person_index(self) -> Path:
        """record key -> person id for every linked record (Parquet)."""
        return self.linkage / "person_index.parquet"

    @property
    def model(self) -> Path:
        return self.linkage / "model.json"

    @property
    def reports(self) -> Path:
        return self.linkage / "reports"

    @property
    def mapping_log(self) -> Path:
        """One JSON line per mapping issued to a project (counts and hashes, no ids)."""
        return self.linkage / "mappings.jsonl"

    def quarantine(self, zone: Path, stamp: str) -> Path:
        return zone / "quarantine" / stamp

    def content_table(self, slug: str, version: str) -> Path:
        """A content dataset version (Parquet), named by its content hash."""
        return self.content / slug / f"{version.removeprefix('sha256:')}.parquet"

    def project_data(self, slug: str) -> Path:
        return self.data_dir / "projects" / slug / "data"

    def prepare(self) -> None:
        """Create the zone directories with their modes (idempotent)."""
        for path, mode in (
            (self.linkage, LINKAGE_MODE),
            (self.content, CONTENT_MODE),
            (self.keys, KEYS_MODE),
        ):
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, mode)


def make_read_only(root: Path) -> None:
    """Files 0444 and directories 0555 under ``root`` (the research extract)."""
    for path in sorted(root.rglob("*"), reverse=True):
        os.chmod(path, 0o555 if path.is_dir() else 0o444)
    os.chmod(root, 0o555)


def remove_tree(root: Path) -> None:
    """Delete ``root`` even when it was made read-only."""
    if not root.exists():
        return
    for path in [root, *root.rglob("*")]:
        if path.is_dir():
            os.chmod(path, 0o755)
    shutil.rmtree(root)
