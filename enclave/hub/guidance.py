"""Guidance served inside the session (SATRE 2.1.05): the analysis library's user guide and the
data dictionary of the session's grants, written into the home at every start.

The dictionary is rendered from catalogue metadata only (no data value ever reaches it) and
rewritten at each start, so it follows the grants. The files are written by the hub into a
directory the session's user owns, so the writing never follows a link the user planted.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import enclave
from enclave.control.service.dictionary import DictionaryEntry

DICTIONARY_FILE = "DATA-DICTIONARY.md"
GUIDE_FILE = "ANALYSIS-GUIDE.md"
# where ``enclave.up.session_env`` copies docs/analysis.md into the session environment
GUIDE_IN_ENVIRONMENT = Path("share") / "enclave" / "analysis.md"
# a source checkout's copy, for a hub run from the repository (make up, the tests)
GUIDE_IN_REPOSITORY = Path(enclave.__file__).resolve().parent.parent / "docs" / "analysis.md"

log = logging.getLogger(__name__)


def guide_source(environment: Path) -> Path | None:
    """The analysis guide the session environment carries, else the repository's, else None."""
    for path in (environment / GUIDE_IN_ENVIRONMENT, GUIDE_IN_REPOSITORY):
        if path.is_file():
            return path
    return None


def _cell(text: str) -> str:
    """Table-cell safe: a custodian's description must not break (or add) a table row."""
    return " ".join(text.split()).replace("|", "\\|") or "-"


def render_dictionary(project: str, entries: Sequence[DictionaryEntry]) -> str:
    """The Markdown data dictionary of ``project``'s session: metadata of granted columns only."""
    lines = [
        f"# Data dictionary: {project}",
        "",
        "The datasets this session may read (under `~/data`, read-only) and, for each, the",
        "variables your grant covers. Generated at session start from the data catalogue;",
        f"the analysis library's guide is in `~/{GUIDE_FILE}`.",
        "",
    ]
    if not entries:
        lines += ["No dataset is granted to this project at present.", ""]
    for entry in entries:
        lines += [
            f"## {_cell(entry.name)} (`{entry.dataset}`)",
            "",
            f"- Version: `{entry.version}`",
            f"- Source: {_cell(entry.source_agency)}",
            f"- Grant expires: {entry.expires_on.isoformat()}",
            f"- About: {_cell(entry.description)}",
            "",
            "| Variable | Sensitivity | Description |",
            "|---|---|---|",
            *(
                f"| `{v.name}` | {v.sensitivity} | {_cell(v.description)} |"
                for v in entry.variables
            ),
            "",
        ]
    return "\n".join(lines)


def write_guidance(home: Path, dictionary: str, guide: Path | None) -> list[str]:
    """Write the dictionary (and the guide, when there is one) into ``home``; return the names
    written. A name the user has made a directory is left alone (and logged)."""
    files = [(DICTIONARY_FILE, dictionary)]
    if guide is not None:
        files.append((GUIDE_FILE, guide.read_text(encoding="utf-8")))
    written = []
    home_fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for name, text in files:
            if _replace(home_fd, name, text):
                written.append(name)
            else:
                log.warning("not writing %s into %s: a directory has that name", name, home)
    finally:
        os.close(home_fd)
    return written


def _replace(dir_fd: int, name: str, text: str) -> bool:
    # Unlinking removes the user's link, never its target; O_EXCL|O_NOFOLLOW then refuses
    # anything planted in between, so the hub never writes through a symlink or hard link.
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=dir_fd)
    except (IsADirectoryError, PermissionError):
        return False
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    fd = os.open(name, flags, 0o444, dir_fd=dir_fd)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    return True
