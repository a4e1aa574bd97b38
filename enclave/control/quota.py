"""Per-project session quotas (SATRE 2.3.03): their bounds and how they are read.

Pure: no database, no I/O. A project's quota is the canonical JSON of its ``session_quota``
column, and ``stored_quota`` is its one reader.
"""

from __future__ import annotations

import json
import math
import re

FIELDS = ("memory_bytes", "cpus", "pids")

# Sane upper bounds: a typo ("80000G") must not hand one session the whole host.
MAX_MEMORY_BYTES = 1024**4  # 1 TiB
MAX_CPUS = 256.0
MAX_PIDS = 1_000_000

_SIZE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([KMGT]?)(?:i?B)?$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


class QuotaError(ValueError):
    """A quota value out of bounds or malformed; the message names the field."""


def parse_memory(text: str) -> int:
    """``"8G"``, ``"512M"``, ``"1.5T"`` or plain bytes -> bytes (binary units)."""
    match = _SIZE.match(text.strip())
    if match is None:
        raise QuotaError(f"memory {text!r} is not a size such as 8G or 512M")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def check_quota(
    memory_bytes: int | None, cpus: float | None, pids: int | None
) -> dict[str, int | float]:
    """The quota's JSON-ready form (only the fields given); QuotaError when one is out of bounds."""
    checked: dict[str, int | float] = {}
    if memory_bytes is not None:
        checked["memory_bytes"] = _bounded("memory_bytes", memory_bytes, MAX_MEMORY_BYTES, int)
    if cpus is not None:
        checked["cpus"] = _bounded("cpus", cpus, MAX_CPUS, float)
    if pids is not None:
        checked["pids"] = _bounded("pids", pids, MAX_PIDS, int)
    return checked


def _bounded(name: str, value: object, cap: float, kind: type[int] | type[float]) -> int | float:
    # bool is an int in Python; True as "one process" is a bug, not a quota
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise QuotaError(f"{name} must be a number; got {type(value).__name__}")
    if kind is int and not isinstance(value, int):
        raise QuotaError(f"{name} must be a whole number; got {value!r}")
    if not math.isfinite(value) or value <= 0 or value > cap:
        raise QuotaError(f"{name} must be positive and at most {cap:g}; got {value!r}")
    return kind(value)


def stored_quota(raw: str) -> dict[str, int | float]:
    """The operator's quota from the ``session_quota`` column; empty when none is set."""
    quota = json.loads(raw or "{}")
    return {k: quota[k] for k in FIELDS if k in quota}
