"""Each research-extract table held to its dataset's microdata policy before it is written.

The unit measured is a person's combination of quasi-identifier values, not a row: a table
of events holds a person many times, and five rows of one person do not make that person
5-anonymous. So the table's distinct (person, quasi-identifiers) rows go through the
anonymisation workflow (``output_checker.microdata.workflow``): the dataset's treatment recipe
if it has one, then local suppression to k where the target still fails, and the result is
carried back to every row of the person. A table that still fails is not written: the
extract is refused. What was measured and done is returned for the extract's reports (counts
and variable names only, never a value), with the HTML report of the workflow.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from enclave.linkage.errors import LinkageError
from output_checker.microdata.problem import MicrodataProblem, RiskTarget
from output_checker.microdata.recipe import Recipe, Step
from output_checker.microdata.report import render_report
from output_checker.microdata.workflow import Workflow, WorkflowRisk

NEW = "__treated_"


def _summary(risk: WorkflowRisk) -> dict[str, Any]:
    return {
        "units": risk.n,
        "expected_reidentifications": round(risk.expected_reidentifications, 3),
        "global_risk": risk.global_risk,
        "not_k_anonymous": {str(k): n for k, n in risk.kanon.items()},
    }


@dataclass(frozen=True)
class TableRisk:
    """What the extract builder measured and did for one table; ``report`` is its HTML."""

    dataset: str
    rows: int
    quasi_identifiers: tuple[str, ...]
    k: int
    max_global_risk: float
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    suppressed: dict[str, int] = field(default_factory=dict)
    steps: tuple[str, ...] = ()
    report: str = field(default="", repr=False)

    def to_dict(self) -> dict[str, Any]:
        found = asdict(self)
        del found["report"]
        return found | {
            "quasi_identifiers": list(self.quasi_identifiers),
            "steps": list(self.steps),
        }


def protect_table(
    frame: pd.DataFrame,
    dataset: str,
    person: str,
    quasi_identifiers: list[str],
    target: RiskTarget,
    treatment: tuple[Step, ...] = (),
) -> tuple[pd.DataFrame, TableRisk]:
    """``frame`` made to meet ``target`` on ``quasi_identifiers`` (a copy when changed), after
    the ``treatment`` steps (on the quasi-identifiers only)."""
    base = TableRisk(
        dataset, len(frame), tuple(quasi_identifiers), target.k, target.max_global_risk
    )
    if not quasi_identifiers or frame.empty:
        return frame, base
    units = frame[[person, *quasi_identifiers]].drop_duplicates().reset_index(drop=True)
    if len(units) < target.k:
        raise LinkageError(
            f"extract table {dataset} cannot meet its microdata policy: "
            f"{len(units)} people cannot be {target.k}-anonymous"
        )
    problem = MicrodataProblem(keys=tuple(quasi_identifiers))
    workflow = Workflow(units[quasi_identifiers], problem)
    try:
        result = workflow.treat_until(target, Recipe(problem, target, treatment))
    except ValueError as error:  # a treatment step that does not fit the table
        raise LinkageError(f"extract table {dataset}: treatment refused: {error}") from None
    if not result.met:
        raise LinkageError(f"extract table {dataset} cannot meet its microdata policy: "
                           f"{result.failures[0]}")  # fmt: skip
    utility = workflow.utility()
    outcome = TableRisk(
        **{
            **asdict(base),
            "before": _summary(workflow.original_risk(target.max_global_risk)),
            "after": _summary(result.risk),
            "suppressed": {str(k): int(v) for k, v in utility.keys["suppressions"].items() if v},
            "steps": tuple(step.describe() for step in result.steps),
            "report": render_report(workflow, target, result, title=f"Extract table {dataset}"),
        }
    )
    if not result.steps:
        return frame, outcome
    lookup = pd.concat([units, workflow.data.add_prefix(NEW)], axis=1)
    # pandas joins missing keys to missing keys, so rows already missing a value find theirs
    merged = frame.merge(lookup, on=[person, *quasi_identifiers], how="left", validate="m:1")
    for name in quasi_identifiers:
        merged[name] = merged.pop(NEW + name)
    return merged[list(frame.columns)], outcome
