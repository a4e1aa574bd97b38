"""Secondary suppression for large tables: a hypercube start, then audit and repair (§10.4).

The hypercube start (:mod:`.hypercube`) prevents exact disclosure in the relations each
primary's hypercube spans. The pattern is then audited in full and repaired from the attacker
LPs' capacity cuts until every primary meets its levels, so the result never fails its own
audit (except for primaries that no pattern can protect, which make it FAIL).
"""

from __future__ import annotations

from typing import Unpack

import numpy.typing as npt

from output_checker.protection.cuts import Key, repair
from output_checker.protection.exact import protect_exact
from output_checker.protection.hypercube import hypercube_start
from output_checker.protection.model import TableModel
from output_checker.protection.problem import ProblemOptions, prepare
from output_checker.protection.result import ProtectionResult, assess

EXACT_MAX_CELLS = 5_000  # above this, ``protect`` uses the heuristic (timings in spec §10.6)


def protect_heuristic(
    model: TableModel,
    values: npt.ArrayLike,
    primary: npt.ArrayLike,
    upl: npt.ArrayLike,
    lpl: npt.ArrayLike,
    *,
    max_repairs: int = 10_000,
    **options: Unpack[ProblemOptions],
) -> ProtectionResult:
    """A protecting (not necessarily cheapest) suppression pattern for a large table.

    Same arguments and result as ``protect_exact``, with method "heuristic" and ``rounds`` the
    number of audits of the repair loop. Raises InputError for bad input."""
    p = prepare(model, values, primary, upl, lpl, **options)
    hopeless: set[Key] = set()
    notes: list[str] = []
    x, audits = repair(p, hypercube_start(p), hopeless, notes, max_steps=max_repairs)
    return assess(p, x, method="heuristic", rounds=audits, notes=notes, failed=hopeless)


def protect(
    model: TableModel,
    values: npt.ArrayLike,
    primary: npt.ArrayLike,
    upl: npt.ArrayLike,
    lpl: npt.ArrayLike,
    **options: Unpack[ProblemOptions],
) -> ProtectionResult:
    """``protect_exact`` up to ``EXACT_MAX_CELLS`` cells, ``protect_heuristic`` above."""
    method = protect_exact if model.n_cells <= EXACT_MAX_CELLS else protect_heuristic
    return method(model, values, primary, upl, lpl, **options)
