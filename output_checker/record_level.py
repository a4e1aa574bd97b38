"""Record-level outputs (type ``microdata``) held to the project's microdata policy.

A record-level file may leave only if every record is ``microdata_k``-anonymous on the
project's declared quasi-identifiers (``Parameters.quasi_identifiers``), and then only after
a person reviews it: passing the policy gives ``review``, never ``pass``. A project that
declares no quasi-identifiers cannot have its record-level outputs measured, so they are
refused, as is a file that cannot be read.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from output_checker.errors import InputError
from output_checker.microdata.problem import RiskTarget
from output_checker.microdata.risk.individual import measure_risk
from output_checker.parameters import Parameters
from output_checker.status import Status

RECORD_LEVEL = "microdata"  # the output type of record-level data


def parse_records(content: bytes, filetype: str) -> pd.DataFrame:
    """A record-level file's table from its bytes (``filetype``: csv or parquet)."""
    kind = filetype.lower().lstrip(".")
    try:
        if kind in ("parquet", "pq"):
            return pd.read_parquet(io.BytesIO(content))
        if kind in ("csv", "txt"):
            return pd.read_csv(io.BytesIO(content))
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise InputError(f"cannot read the records: {str(error).splitlines()[0]}") from None
    raise InputError(f"record-level outputs must be csv or parquet, not {kind!r}")


def read_records(path: Path) -> pd.DataFrame:
    try:
        content = path.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read {path.name}: {error.strerror}") from None
    return parse_records(content, path.suffix)


def check_records(data: pd.DataFrame, parameters: Parameters) -> tuple[Status, str]:
    """The verdict on a record-level table and its one-line reason."""
    if not parameters.quasi_identifiers:
        return Status.FAIL, (
            "record-level output refused: the project declares no quasi-identifiers, so its "
            "disclosure risk cannot be measured"
        )
    keys = [name for name in parameters.quasi_identifiers if name in data.columns]
    if not keys:
        return Status.REVIEW, "record-level output holding none of the quasi-identifiers"
    target = RiskTarget(
        k=parameters.microdata_k, max_global_risk=parameters.microdata_max_global_risk
    )
    measures = measure_risk(data[keys], max_global_risk=target.max_global_risk)
    failures = target.check(measures, weighted=False)  # an output has no sampling weights
    named = ", ".join(keys)
    if failures:
        return Status.FAIL, f"record-level output refused (on {named}): " + "; ".join(failures)
    return Status.REVIEW, (
        f"record-level output: every record is {target.k}-anonymous on {named}; "
        "a person reviews it before release"
    )
