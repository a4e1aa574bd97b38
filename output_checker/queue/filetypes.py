"""File rules every output must pass, wherever it comes from (an outbox bundle or an upload):
safe names, the type allow-list, size limits, and content that is what its name says. Pure.

Archives are refused by name and by content, because an archive hides files from review;
xlsx is the one zip-based type allowed, and must really be one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from output_checker import manifest
from output_checker.errors import CheckerError
from output_checker.queue.errors import InvalidInput

ALLOWED_TYPES: frozenset[str] = frozenset(
    {"csv", "xlsx", "json", "png", "svg", "pdf", "html", "txt", "md"}
)
TEXT_TYPES: frozenset[str] = frozenset({"csv", "json", "svg", "html", "txt", "md"})
MAX_NAME = 200
# Printable names of letters, digits and a few separators: no slashes, no control characters,
# no leading dot (hidden files), no "..".
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9 ._()+,=-]*$")

_ARCHIVE_MAGIC: tuple[tuple[int, bytes], ...] = (
    (0, b"PK\x03\x04"),  # zip (and so docx, jar, ...)
    (0, b"PK\x05\x06"),  # empty zip
    (0, b"\x1f\x8b"),  # gzip
    (0, b"BZh"),  # bzip2
    (0, b"\xfd7zXZ\x00"),  # xz
    (0, b"7z\xbc\xaf\x27\x1c"),  # 7-zip
    (0, b"Rar!\x1a\x07"),  # rar
    (0, b"\x28\xb5\x2f\xfd"),  # zstandard
    (257, b"ustar"),  # tar
)
_MAGIC: dict[str, tuple[bytes, ...]] = {
    "png": (b"\x89PNG\r\n\x1a\n",),
    "pdf": (b"%PDF-",),
    "xlsx": (b"PK\x03\x04",),
}


@dataclass(frozen=True)
class Limits:
    """Size limits of the queue (OpenSAFELY's 16 MiB per file; configurable)."""

    max_file_bytes: int = 16 * 1024 * 1024
    max_bundle_bytes: int = 64 * 1024 * 1024
    max_files: int = 100
    max_manifest_bytes: int = 32 * 1024 * 1024  # checker records of big tables are large

    def __post_init__(self) -> None:
        for name in ("max_file_bytes", "max_bundle_bytes", "max_files", "max_manifest_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"limit {name} must be at least 1")


DEFAULT_LIMITS = Limits()


def check_name(name: str) -> str:
    """Return ``name`` if it is a safe plain file name, else raise InvalidInput.

    A plain name has no directory part, does not start with a dot, holds no control
    character and is at most MAX_NAME characters long.
    """
    if not isinstance(name, str) or not name or len(name) > MAX_NAME:
        raise InvalidInput(f"file names must be 1 to {MAX_NAME} characters", rule="bad_name")
    if "/" in name or "\\" in name or ".." in name or not NAME.match(name):
        raise InvalidInput(
            f"unsafe file name {name[:60]!r}: use letters, digits, spaces and . _ - ( ) + , = "
            "without a leading dot or any directory part",
            rule="bad_name",
        )
    return name


def filetype_of(name: str) -> str:
    """The lower-case extension of ``name`` if it is on the allow-list, else InvalidInput."""
    kind = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if kind not in ALLOWED_TYPES:
        allowed = ", ".join(sorted(ALLOWED_TYPES))
        raise InvalidInput(
            f"{name}: type {kind or '(none)'!r} is not allowed (allowed: {allowed})",
            rule="file_type",
        )
    return kind


def is_archive(head: bytes) -> bool:
    """Whether the first bytes of a file are those of an archive or compressed stream."""
    return any(head[at : at + len(magic)] == magic for at, magic in _ARCHIVE_MAGIC)


def check_content(name: str, kind: str, data: bytes) -> None:
    """Refuse content that is not what ``kind`` says: archives (except a real xlsx), binary
    data in a text type, broken JSON, a PNG or PDF without its signature."""
    expected = _MAGIC.get(kind)
    if expected is not None and not any(data.startswith(m) for m in expected):
        raise InvalidInput(f"{name}: the content is not a {kind} file", rule="file_content")
    if kind != "xlsx" and is_archive(data[:512]):
        raise InvalidInput(f"{name}: archives and compressed files are refused", rule="archive")
    if kind in TEXT_TYPES:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(
                f"{name}: a {kind} file must be UTF-8 text", rule="file_content"
            ) from None
        if "\x00" in text:
            raise InvalidInput(
                f"{name}: a {kind} file must not hold NUL bytes", rule="file_content"
            )
        if kind == "json":
            try:
                json.loads(text, parse_constant=_no_constant)
            except ValueError:
                raise InvalidInput(f"{name}: not valid JSON", rule="file_content") from None


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def check_size(name: str, size: int, limits: Limits) -> None:
    """Refuse an empty file or one over the per-file limit."""
    if size == 0:
        raise InvalidInput(f"{name}: the file is empty", rule="file_size")
    if size > limits.max_file_bytes:
        raise InvalidInput(
            f"{name}: {size} bytes is over the limit of {limits.max_file_bytes}", rule="file_size"
        )


def check_file(name: str, data: bytes, limits: Limits = DEFAULT_LIMITS) -> str:
    """All the rules above; returns the file's type."""
    check_name(name)
    kind = filetype_of(name)
    check_size(name, len(data), limits)
    check_content(name, kind, data)
    return kind


def check_record(name: str, record: Any, sha256: str) -> dict[str, Any]:
    """A valid checker manifest record (``output_checker.manifest.validate``) bound to the
    file's bytes: its ``output.sha256`` must be the file's. Returns it as a dict."""
    if not isinstance(record, Mapping):
        raise InvalidInput(f"{name}: the checker record must be a JSON object", rule="bad_record")
    try:
        manifest.validate(record)
    except CheckerError as error:
        raise InvalidInput(f"{name}: {error}", rule="bad_record") from None
    if record["output"]["sha256"] != sha256:
        raise InvalidInput(
            f"{name}: the file does not hash to the sha256 its checker record names",
            rule="hash_mismatch",
        )
    return dict(record)
