"""Service views (frozen dataclasses) as JSON-ready values: dates in ISO 8601, tuples as lists.

Flask's own JSON provider writes dates in the RFC 822 form of HTTP headers; the API promises
ISO 8601 (``format: date`` and ``date-time`` in the OpenAPI document), so views pass through
``plain`` first.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from datetime import date
from functools import cache
from typing import Any

# Types passed through as they are, checked first: most values in a view are one of these.
_AS_IS = frozenset({str, int, float, bool, type(None)})


@cache
def _field_names(cls: Any) -> tuple[str, ...] | None:
    """A dataclass's field names (looked up once per class: list views repeat them)."""
    return tuple(f.name for f in fields(cls)) if is_dataclass(cls) else None


def plain(value: Any) -> Any:
    """``value`` with dataclasses as dicts, dates and datetimes as ISO strings, tuples as lists,
    sets as sorted lists."""
    cls: Any = type(value)
    if cls in _AS_IS:
        return value
    names = _field_names(cls)
    if names is not None:
        return {name: plain(getattr(value, name)) for name in names}
    if isinstance(value, date):  # datetime too
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, set | frozenset):  # sorted, so the JSON is the same every time
        return sorted(plain(item) for item in value)
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    return value
