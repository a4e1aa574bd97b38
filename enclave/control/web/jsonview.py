"""Service views (frozen dataclasses) as JSON-ready values: dates in ISO 8601, tuples as lists.

Flask's own JSON provider writes dates in the RFC 822 form of HTTP headers; the API promises
ISO 8601 (``format: date`` and ``date-time`` in the OpenAPI document), so views pass through
``plain`` first.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from datetime import date
from typing import Any


def plain(value: Any) -> Any:
    """``value`` with dataclasses as dicts, dates and datetimes as ISO strings, tuples as lists,
    sets as sorted lists."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, date):  # datetime too
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, set | frozenset):  # sorted, so the JSON is the same every time
        return sorted(plain(item) for item in value)
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    return value
