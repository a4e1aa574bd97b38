"""An anonymisation session: the original data, the treated data, the steps, risk and utility.

``Workflow(data, problem)`` plays the part of sdcMicro's ``sdcMicroObj``: ``apply(step)`` runs a
recipe step on the current data (keeping the previous data for ``undo()``), ``risk()`` measures
the current key variables (``measure_risk`` with the problem's weights, households and alpha;
k-anonymity violations; l-diversity of the sensitive variables; dRisk once numeric variables
changed) and ``utility()`` compares the current data with the original. ``treat_until`` runs a
recipe and, if the target still fails, suppresses key values to k-anonymity, then says plainly
whether the target holds.

Where this differs from sdcMicro (``sdcmicro_compatible=True`` switches the first one):

1. k-anonymity with strata. sdcMicro's ``print(obj, "kAnon")`` counts fk < k over the whole
   file while ``localSuppression`` only makes records k-anonymous *within* each stratum. By
   default the strata variable is counted as one more key (fk within strata, the guarantee
   local suppression gives, and stricter when the strata are released); the compatible mode
   counts over the whole file. The individual and global risks are the same in both modes
   (``measure_risk`` on the key variables alone, as sdcMicro).
2. Local suppression always ends k-anonymous: the set-aside records (groups thinned to k) are
   re-checked, where sdcMicro can leave some below k (alpha < 1, all-missing records). The
   function exposes no switch, so both modes behave the same here.
3. ``local_supp`` suppresses where risk > threshold, as sdcMicro's code (its manual says >=).
4. The undo stack is bounded by a number of steps (``max_undo``), not sdcMicro's row budget.
5. Method-level differences (deterministic equal-amount breaks, vectorised rank swap pairing,
   complete records for shuffling...) are documented in the method modules.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import pandas as pd

from output_checker.microdata.problem import MicrodataProblem, RiskTarget
from output_checker.microdata.recipe import Recipe, Step
from output_checker.microdata.risk.frequencies import frequencies
from output_checker.microdata.risk.individual import RiskMeasures, kanon_violations, measure_risk
from output_checker.microdata.risk.ldiversity import ldiversity
from output_checker.microdata.risk.numeric import d_risk
from output_checker.microdata.utility import (
    NumericUtility,
    numeric_utility,
    suppressions,
    total_variation,
)

KANON_LEVELS = (2, 3, 5)
DEFAULT_MAX_UNDO = 20


@dataclass(frozen=True)
class WorkflowRisk:
    """Risk of the current data: ``measure_risk`` plus k-anonymity, l-diversity and dRisk.

    ``fk_kanon`` is the frequency used for k-anonymity (within strata unless compatible mode).
    ``ldiversity`` maps each sensitive variable to its minimum distinct/entropy/recursive l and
    the number of records whose group has a single sensitive value.
    """

    measures: RiskMeasures
    fk_kanon: np.ndarray
    ldiversity: Mapping[str, Mapping[str, float]] | None
    d_risk: float | None

    @property
    def n(self) -> int:
        return len(self.fk_kanon)

    @property
    def global_risk(self) -> float:
        return self.measures.global_risk

    @property
    def expected_reidentifications(self) -> float:
        return self.measures.expected_reidentifications

    @property
    def household_global_risk(self) -> float | None:
        return self.measures.household_global_risk

    def kanon_violations(self, k: float, weighted: bool = False) -> int:
        """Records with fk < k (within strata by default), or Fk < k when ``weighted``."""
        if weighted:
            return self.measures.kanon_violations(k, weighted=True)
        return kanon_violations(self.fk_kanon, k)

    @property
    def kanon(self) -> dict[int, int]:
        """Violations of k-anonymity for k = 2, 3, 5."""
        return {k: self.kanon_violations(k) for k in KANON_LEVELS}


@dataclass(frozen=True)
class WorkflowUtility:
    """Information loss of the current data against the original.

    ``numeric``: sdcMicro's IL1/IL1s/eigen and the statistic changes (None without numeric
    variables). ``keys``: per key variable, categories before/after, the new suppressions and
    the share of records whose category changed in the frequency table (total variation).
    """

    numeric: NumericUtility | None
    keys: pd.DataFrame

    @property
    def total_suppressions(self) -> int:
        return int(self.keys["suppressions"].sum())


@dataclass(frozen=True)
class TreatmentResult:
    """The outcome of ``treat_until``: whether the target holds, and why not."""

    met: bool
    failures: tuple[str, ...]
    risk: WorkflowRisk
    steps: tuple[Step, ...]

    @property
    def message(self) -> str:
        """One line for people: the verdict and every failing criterion."""
        if self.met:
            return f"target met after {len(self.steps)} step(s)"
        return "target not met: " + "; ".join(self.failures)


class Workflow:
    """The original data, the current (treated) data and a bounded undo stack of steps."""

    def __init__(
        self,
        data: pd.DataFrame,
        problem: MicrodataProblem,
        *,
        max_undo: int = DEFAULT_MAX_UNDO,
        sdcmicro_compatible: bool = False,
    ) -> None:
        if not isinstance(data, pd.DataFrame):
            raise ValueError("data must be a pandas DataFrame")
        problem.validate(data)
        if max_undo < 0:
            raise ValueError(f"max_undo must be >= 0, got {max_undo}")
        self.problem = problem
        self.sdcmicro_compatible = sdcmicro_compatible
        self._original = data.copy(deep=True)
        self._data = self._original.copy(deep=True)
        self._undo: deque[tuple[Step, pd.DataFrame]] = deque(maxlen=max_undo)
        self._history: list[Step] = []

    @property
    def original(self) -> pd.DataFrame:
        """A copy of the data as given."""
        return self._original.copy(deep=True)

    @property
    def data(self) -> pd.DataFrame:
        """A copy of the current (treated) data."""
        return self._data.copy(deep=True)

    @property
    def history(self) -> tuple[Step, ...]:
        """The steps applied so far (undone steps removed)."""
        return tuple(self._history)

    def apply(self, step: Step | Mapping[str, Any]) -> Self:
        """Run one step on the current data; the previous data goes on the undo stack."""
        if not isinstance(step, Step):
            step = Step.from_dict(step)
        step.check(self.problem)
        treated = step.run(self._data, self.problem)
        if list(treated.columns) != list(self._data.columns) or len(treated) != len(self._data):
            raise ValueError(f"{step.method} changed the shape of the data")  # a method bug
        self._undo.append((step, self._data))
        self._history.append(step)
        self._data = treated
        return self

    def undo(self) -> Self:
        """Return to the data before the last step (ValueError when nothing is left to undo)."""
        if not self._undo:
            raise ValueError("nothing to undo")
        _, previous = self._undo.pop()
        self._history.pop()
        self._data = previous
        return self

    def _weights(self, data: pd.DataFrame) -> np.ndarray | None:
        w = self.problem.weight
        return None if w is None else data[w].to_numpy(dtype=float)

    def risk(self, max_global_risk: float = 0.01) -> WorkflowRisk:
        """Risk of the current data (``max_global_risk`` sets the reported threshold)."""
        return self._risk(self._data, max_global_risk)

    def original_risk(self, max_global_risk: float = 0.01) -> WorkflowRisk:
        """Risk of the original data."""
        return self._risk(self._original, max_global_risk)

    def _risk(self, data: pd.DataFrame, max_global_risk: float) -> WorkflowRisk:
        p = self.problem
        keys = data[list(p.keys)]
        household = None if p.household is None else data[p.household]
        weights = self._weights(data)
        measures = measure_risk(keys, weights, household, p.alpha, max_global_risk)
        fk_kanon = measures.fk
        if p.strata is not None and not self.sdcmicro_compatible:
            # The stratum as one more key; a missing stratum is a stratum, not a wildcard.
            stratum, _ = pd.factorize(data[p.strata], use_na_sentinel=False)
            with_strata = keys.assign(**{"\x00stratum": stratum})
            fk_kanon = frequencies(with_strata, None, p.alpha).fk
        diversity = None
        if p.sensitive:
            table = ldiversity(keys, data[list(p.sensitive)])
            diversity = {
                name: {
                    "min_distinct": float(table[f"{name}_Distinct_Ldiversity"].min()),
                    "min_entropy": float(table[f"{name}_Entropy_Ldiversity"].min()),
                    "min_recursive": float(table[f"{name}_Recursive_Ldiversity"].min()),
                    "records_distinct_below_2": float(
                        (table[f"{name}_Distinct_Ldiversity"] < 2).sum()
                    ),
                }
                for name in p.sensitive
            }
        numeric_risk = None
        numeric = list(p.numeric)
        if numeric and not data[numeric].equals(self._original[numeric]):
            numeric_risk = d_risk(self._original[numeric], data[numeric])
        return WorkflowRisk(measures, fk_kanon, diversity, numeric_risk)

    def utility(self) -> WorkflowUtility:
        """Information loss of the current data against the original."""
        p = self.problem
        numeric = list(p.numeric)
        numeric_loss = (
            numeric_utility(self._original[numeric], self._data[numeric]) if numeric else None
        )
        keys = list(p.keys)
        before, after = self._original[keys], self._data[keys]
        table = pd.DataFrame(
            {
                "categories_before": [before[k].nunique(dropna=True) for k in keys],
                "categories_after": [after[k].nunique(dropna=True) for k in keys],
                "suppressions": suppressions(before, after).to_numpy(),
                "changed_share": [total_variation(before[k], after[k]) for k in keys],
            },
            index=pd.Index(keys, name="variable"),
        )
        return WorkflowUtility(numeric_loss, table)

    def treat_until(self, target: RiskTarget, recipe: Recipe) -> TreatmentResult:
        """Apply the recipe's steps; if the target fails with k-anonymity violations, suppress
        key values to k = ``target.k`` (within strata) and check once more. Never loops."""
        if recipe.problem != self.problem:
            raise ValueError("the recipe's [problem] differs from the workflow's problem")
        for step in recipe.steps:
            self.apply(step)
        weighted = self.problem.weight is not None
        risk = self.risk(target.max_global_risk)
        failures = target.check(risk, weighted=weighted)
        if failures and risk.kanon_violations(target.k) > 0:
            self.apply(Step("local_suppression", {"k": target.k}))
            risk = self.risk(target.max_global_risk)
            failures = target.check(risk, weighted=weighted)
        return TreatmentResult(not failures, tuple(failures), risk, self.history)
