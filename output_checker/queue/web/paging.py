"""Pages of the queue overview for the list page and the list API: ``?page=`` (from 1) and
``?limit=`` (rows per page, at most MAX_LIMIT), read from the query string with one-line
errors, so that a long queue is never read or rendered whole."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from enclave.control.errors import InvalidInput

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# Far beyond any real queue, and small enough that page x limit stays a small integer.
MAX_PAGE = 100_000
WHOLE = re.compile(r"^[0-9]{1,9}$")
# The OpenAPI schemas of the two query parameters.
QUERY_SCHEMAS: Mapping[str, dict[str, Any]] = {
    "page": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1},
    "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
}

T = TypeVar("T")


@dataclass(frozen=True)
class Page:
    """Which rows to show: page ``number`` (from 1) of ``limit`` rows."""

    number: int = 1
    limit: int = DEFAULT_LIMIT

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.limit


def _whole(text: str | None, name: str, high: int, default: int) -> int:
    if text is None or not text.strip():
        return default
    value = text.strip()
    if not WHOLE.match(value) or not 1 <= int(value) <= high:
        raise InvalidInput(f"{name} must be a whole number from 1 to {high}", rule="bad_page")
    return int(value)


def page_from(args: Mapping[str, str]) -> Page:
    """The page a query string asks for (``page``, ``limit``); InvalidInput (``bad_page``)
    for anything but a whole number in range."""
    return Page(
        _whole(args.get("page"), "page", MAX_PAGE, 1),
        _whole(args.get("limit"), "limit", MAX_LIMIT, DEFAULT_LIMIT),
    )


def fetch(rows_of: Callable[[int, int], list[T]], page: Page) -> tuple[list[T], bool]:
    """The page's rows from ``rows_of(limit, offset)``, and whether another page follows
    (one row more is asked for to know)."""
    rows = rows_of(page.limit + 1, page.offset)
    return rows[: page.limit], len(rows) > page.limit
