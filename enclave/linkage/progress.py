"""Progress bars for long steps (tqdm on stderr), behind a small typed surface."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol, TypeVar

from tqdm import tqdm  # type: ignore[import-untyped]

T = TypeVar("T")


class Bar(Protocol):
    """The part of a progress bar the linkage code uses."""

    def update(self, n: int = 1) -> Any: ...

    def set_postfix_str(self, s: str = "") -> Any: ...

    def close(self) -> None: ...

    def __enter__(self) -> Bar: ...

    def __exit__(self, *exc: object) -> None: ...


def bar(total: int, desc: str, *, enabled: bool, unit: str = "step") -> Bar:
    """A bar of ``total`` steps, silent unless ``enabled``."""
    made: Bar = tqdm(total=total, desc=desc, disable=not enabled, unit=unit)
    return made


def track(items: Iterable[T], desc: str, *, enabled: bool, total: int | None = None) -> Iterator[T]:
    """``items``, with a bar while iterating when ``enabled``."""
    yield from tqdm(items, desc=desc, disable=not enabled, total=total)
