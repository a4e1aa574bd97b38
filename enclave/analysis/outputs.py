"""The session's outputs: what each call produced, its files, verdict and the researcher's
notes (comments, exception requests), in the order they were made. Pure bookkeeping."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from enclave.analysis.errors import AnalysisError
from output_checker.status import Status

# Output names become bundle group names and the start of file names: letters, digits and
# _ . - only (a subset of what the queue accepts for both), and never "..".
OUTPUT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_COMMENT = 2_000


def check_output_name(name: str) -> str:
    """``name`` if it can name an output, else AnalysisError saying what is allowed."""
    if not isinstance(name, str) or not OUTPUT_NAME.match(name) or ".." in name:
        raise AnalysisError(
            f"output name {str(name)[:40]!r} must be 1-64 letters, digits, _ . or - "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class OutputFile:
    """One file of an output: its bytes exactly as they would leave, the checker's record
    (bound to the bytes by ``record["output"]["sha256"]``) and the recipe, if any."""

    label: str  # what the file holds, e.g. "table", "coefficients", "plot"
    extension: str  # csv, png, ...
    data: bytes
    record: dict[str, Any] | None
    recipe: dict[str, Any] | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class Provenance:
    """Where an output's numbers came from, for the reviewer: a registered dataset (with a
    recipe when the queue can re-derive the output) or a researcher-transformed frame."""

    recipe: bool
    label: str  # one line, e.g. "re-derivable from cohort-outcomes (recipe)"
    dataset: str | None = None
    version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "label": self.label,
            "dataset": self.dataset,
            "version": self.version,
        }


@dataclass(frozen=True)
class Output:
    """One recorded output: the files the call produced and everything said about them."""

    name: str
    method: str  # crosstab, pivot_table, ols, hist, custom, ...
    command: str
    status: Status
    summary: str  # the plain-language summary that was shown
    files: tuple[OutputFile, ...]
    provenance: Provenance
    comments: tuple[str, ...] = ()
    exception: str = ""
    created: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())

    def file_names(self) -> list[str]:
        """The bundle file name of each file: ``<name>.<ext>`` for a single file, else
        ``<name>_<label>.<ext>``; unique within the output."""
        if len(self.files) == 1:
            return [f"{self.name}.{self.files[0].extension}"]
        return [f"{self.name}_{f.label}.{f.extension}" for f in self.files]


class OutputRegistry:
    """The session's outputs by name, in the order they were made (``output_0``, ...)."""

    def __init__(self) -> None:
        self._outputs: dict[str, Output] = {}
        self._next = 0

    def __iter__(self) -> Iterator[Output]:
        return iter(list(self._outputs.values()))

    def __len__(self) -> int:
        return len(self._outputs)

    def __contains__(self, name: object) -> bool:
        return name in self._outputs

    def next_name(self) -> str:
        """The name the next output will get (ACRO's ``output_<n>``), never reused."""
        while f"output_{self._next}" in self._outputs:
            self._next += 1
        return f"output_{self._next}"

    def add(self, output: Output) -> Output:
        """Record ``output`` under its name, which must be free."""
        check_output_name(output.name)
        if output.name in self._outputs:
            raise AnalysisError(f"there is already an output named {output.name!r}")
        self._outputs[output.name] = output
        if output.name == f"output_{self._next}":
            self._next += 1
        return output

    def get(self, name: str) -> Output:
        """The output called ``name``; AnalysisError listing the names when there is none."""
        try:
            return self._outputs[name]
        except KeyError:
            known = ", ".join(self._outputs) or "none yet"
            raise AnalysisError(f"no output named {name!r} (outputs: {known})") from None

    def remove(self, name: str) -> None:
        self.get(name)
        del self._outputs[name]

    def rename(self, old: str, new: str) -> None:
        """Give ``old`` the name ``new``, keeping its place in the order."""
        self.get(old)
        check_output_name(new)
        if new in self._outputs and new != old:
            raise AnalysisError(f"there is already an output named {new!r}")
        self._outputs = {
            (new if key == old else key): (replace(value, name=new) if key == old else value)
            for key, value in self._outputs.items()
        }

    def add_comment(self, name: str, comment: str) -> None:
        text = _text(comment, "comment")
        output = self.get(name)
        self._outputs[name] = replace(output, comments=(*output.comments, text))

    def set_exception(self, name: str, reason: str) -> None:
        """Ask for ``name`` to be released although it does not pass, for ``reason``."""
        text = _text(reason, "exception reason")
        output = self.get(name)
        self._outputs[name] = replace(output, exception=text)

    def clear(self) -> None:
        """Forget every output (after they were bundled); names keep counting up."""
        self._outputs.clear()


def _text(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise AnalysisError(f"the {what} must be non-empty text")
    text = value.strip()
    if len(text) > MAX_COMMENT or "\x00" in text:
        raise AnalysisError(f"the {what} must be at most {MAX_COMMENT} characters of text")
    return text
