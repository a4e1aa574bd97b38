"""Reading data for the checker from a frame or a file path (CSV or Parquet)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from output_checker.errors import InputError


def read_data(source: pd.DataFrame | str | Path, columns: Iterable[str]) -> pd.DataFrame:
    """Return ``source`` itself, or the named columns of a ``.csv``/``.parquet`` file."""
    if isinstance(source, pd.DataFrame):
        return source
    path = Path(source)
    wanted = list(dict.fromkeys(columns))
    if not path.is_file():
        raise InputError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            present = set(pq.read_schema(path).names)
            _require(wanted, present, path)
            return pd.read_parquet(path, columns=wanted)
        if suffix in (".csv", ".txt", ".gz"):
            header = pd.read_csv(path, nrows=0)
            _require(wanted, set(header.columns), path)
            return pd.read_csv(path, usecols=wanted)
    except InputError:
        raise
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise InputError(f"cannot read {path.name}: {str(error).splitlines()[0]}") from None
    raise InputError(f"unsupported data file type {suffix!r}: use .csv or .parquet")


def _require(wanted: list[str], present: set[str], path: Path) -> None:
    missing = [name for name in wanted if name not in present]
    if missing:
        raise InputError(f"column(s) not in {path.name}: {', '.join(map(repr, missing))}")
