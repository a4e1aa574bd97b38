"""The linkage unit's errors: one hierarchy, each carrying a one-line message for people."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class LinkageError(Exception):
    """Any refusal of the linkage unit; ``str()`` is one line meant for the operator."""


class SettingsInvalid(LinkageError):
    """Linkage settings or a saved model that cannot be used."""


class KeyUnavailable(LinkageError):
    """A master or project key is missing, malformed or has been destroyed."""


@dataclass(frozen=True)
class RowError:
    """One problem in an input file, located by file and line (1 = the header line)."""

    file: str
    line: int
    column: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        return (
            f"{where}: {self.column}: {self.message}" if self.column else f"{where}: {self.message}"
        )


class InvalidInput(LinkageError):
    """Input files with errors; ``errors`` lists every problem found, row by row.

    The message names how many problems there were and the first few; the full list goes to
    the error report. Nothing from such an input is registered or linked.
    """

    def __init__(self, errors: Sequence[RowError], *, shown: int = 3) -> None:
        self.errors = tuple(errors)
        first = "; ".join(str(e) for e in self.errors[:shown])
        more = f" (and {len(self.errors) - shown} more)" if len(self.errors) > shown else ""
        noun = "problem" if len(self.errors) == 1 else "problems"
        super().__init__(f"{len(self.errors)} input {noun}: {first}{more}")
