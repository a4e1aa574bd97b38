"""An output's published cells as ledger rows, and its audit against earlier releases (issue 11).

The queue re-makes every output that has a recipe (``recheck``); from those same rows this
module builds what an attacker learns from the output: each published cell as a linear
aggregate over the project's entities (``output_checker.ledger``). Entities are keyed by a
64-bit hash of the recipe's entity column (so outputs of different datasets that share the
project's pseudonyms line up) or, without one, of the dataset and the row's position in it.
The keys stay on the trusted side: they are stored in the ledger, never shown.

Pure: no I/O. ``ledger_store`` writes and reads these cells; ``service.ledger`` calls both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import sparse

from output_checker.columns import prepare
from output_checker.ledger import (
    COUNT,
    Aggregates,
    CellRef,
    DifferencingFinding,
    Kind,
    LPFinding,
    Microdata,
    Mitigation,
    Quantity,
    TableDefinition,
    components,
    differencing_findings,
    lp_findings,
    mitigations,
    stack,
    table_aggregates,
    weighted_count,
)
from output_checker.queue.recheck import Derived
from output_checker.results import TableResult
from output_checker.rounding import round_to_base, true_interval

KeyArray = npt.NDArray[np.uint64]
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]

THIS_OUTPUT = ""  # the output label of the cells under audit
# Seconds the LP audit may take before the cells it has not audited count as findings (not
# shown to be protected): an intake never hangs on a ledger too large to solve in time.
LP_TIME_LIMIT = 60.0


@dataclass(frozen=True)
class OutputCells:
    """One output's published cells over its own entities: row ``r`` of ``aggregates``
    (columns = this output's entities, keyed by ``keys``) is hidden (suppressed) where
    ``hidden[r]``, with protection level ``protection[r]``. ``records`` when just made."""

    aggregates: Aggregates
    keys: KeyArray
    hidden: BoolArray
    protection: FloatArray
    records: Microdata | None = None  # the records, to try mitigations on (never stored)
    base: int = 0  # the rounding base of every published value (0: exact)

    def known(self) -> tuple[FloatArray, FloatArray]:
        """Per row, what an attacker knows of its value: [lo, hi] around the rounded value,
        or the exact value twice."""
        values = np.asarray(self.aggregates.weights.sum(axis=1), dtype=np.float64).ravel()
        if not self.base:
            return values, values
        whole = self.aggregates.quantities[0].kind is Kind.COUNT
        return true_interval(round_to_base(values, self.base), self.base, whole)

    def labelled(self, output: str) -> OutputCells:
        """The same cells, naming ``output`` as where they were published."""
        grids = tuple(replace(grid, output=output) for grid in self.aggregates.grids)
        return replace(self, aggregates=replace(self.aggregates, grids=grids))


@dataclass(frozen=True)
class LedgerAudit:
    """The differencing audit of one output against the released ones."""

    differencing: tuple[DifferencingFinding, ...]
    lp: tuple[LPFinding, ...]
    mitigations: tuple[Mitigation, ...] = ()

    @property
    def clean(self) -> bool:
        return not self.differencing and not self.lp


def _quantity(derived: Derived) -> tuple[Quantity, FloatArray | None] | str:
    """The quantity the output's cells add up and each record's part of it (None: entities
    are counted), or why the output has no linear cells. A weighted sum or mean adds up each
    record's value times its weight; a weighted count adds up the weights."""
    request = derived.result.table.request
    name, weights = request.aggregation.name, request.weights
    frame = derived.frame.reset_index(drop=True)
    weight = None if weights is None else frame[weights].to_numpy(dtype=np.float64)
    if name == "count":
        return (COUNT, None) if weights is None else (weighted_count(weights), weight)
    if name in ("sum", "mean") and request.values is not None:
        values = frame[request.values].to_numpy(dtype=np.float64)
        part = values if weight is None else values * weight
        return Quantity(Kind(name), request.values, weights), part
    return f"a {request.aggregation.label} is not a count, a sum or a mean"


def entity_keys(derived: Derived) -> KeyArray:
    """Per row of the recipe's frame, its entity's 64-bit key."""
    entity = derived.recipe.entity
    if entity is not None:
        labels = derived.frame[entity].astype(str).to_numpy(dtype=object)
        return np.asarray(pd.util.hash_array(labels), dtype=np.uint64)
    where = pd.DataFrame({"dataset": derived.recipe.dataset, "row": derived.frame.index})
    return np.asarray(pd.util.hash_pandas_object(where, index=False), dtype=np.uint64)


def output_cells(derived: Derived) -> OutputCells | str:
    """The published cells of a re-made table as ledger rows, or the reason they cannot be
    (a statistic that is not a count, a sum or a mean)."""
    quantity = _quantity(derived)
    if isinstance(quantity, str):
        return quantity
    kind, values = quantity
    result = derived.result
    laid = result.table
    request = laid.request
    columns = prepare(derived.frame.reset_index(drop=True), request)
    keys, entity = np.unique(entity_keys(derived), return_inverse=True)
    definition = TableDefinition(
        output=THIS_OUTPUT,
        variables=(*request.index, *request.columns),
        levels=tuple(tuple(np.asarray(levels).tolist()) for levels in columns.levels),
        n_index=len(request.index),
        margins=request.margins,
        hierarchical=request.hierarchical,
    )
    aggregates = table_aggregates(
        definition,
        entity.ravel(),
        columns.codes,
        int(keys.shape[0]),
        values=values,
        measure=kind.measure,
        aggregation="mean" if kind.kind is Kind.MEAN else "sum",
        weighted_by=kind.weights,
    )
    shown = _shown_position(aggregates, laid.sizes, result)
    records = None
    if kind.kind is not Kind.MEAN:  # mitigations rebuild counts and sums only
        records = Microdata(
            definition,
            entity.ravel(),
            tuple(columns.codes),
            int(keys.shape[0]),
            values,
            kind.measure,
            kind.weights,
        )
    return OutputCells(
        aggregates=aggregates,
        keys=keys.astype(np.uint64),
        hidden=result.suppressed[shown],
        protection=result.protection_level[shown],
        records=records,
        base=derived.recipe.round or 0,
    )


def _shown_position(
    aggregates: Aggregates, sizes: Sequence[int], result: TableResult
) -> npt.NDArray[np.intp]:
    """Per ledger row, the position of the same cell among the table's shown cells."""
    laid = result.table
    dims = np.asarray(sizes) + 1  # a level code, or the level count for "All"
    grid = np.concatenate([laid.row_keys[laid.cell_row], laid.col_keys[laid.cell_col]], axis=1)
    shown_key = np.ravel_multi_index(tuple(grid[laid.shown].T), tuple(dims))
    codes = aggregates.grids[0].codes
    row_key = np.ravel_multi_index(tuple(np.where(codes < 0, dims - 1, codes).T), tuple(dims))
    order = np.argsort(shown_key)
    at = np.searchsorted(shown_key, row_key, sorter=order).clip(max=len(order) - 1)
    position = order[at]
    if not (shown_key[position] == row_key).all():
        raise ValueError("the ledger's cells are not the table's shown cells")
    return np.asarray(position, dtype=np.intp)


def audit(
    released: Sequence[OutputCells],
    new: OutputCells,
    threshold: int,
    time_limit: float | None = LP_TIME_LIMIT,
) -> LedgerAudit:
    """The new output's cells against every released output's, as one system over the union
    of their entities: the exact differencing check, and the LP audit of its hidden cells."""
    parts = [*released, new]
    keys, column = np.unique(np.concatenate([part.keys for part in parts]), return_inverse=True)
    column = column.ravel()
    width = int(keys.shape[0])
    offsets = np.cumsum([0] + [part.keys.shape[0] for part in parts])
    on_union = [
        _on_columns(part.aggregates, column[offsets[i] : offsets[i + 1]], width)
        for i, part in enumerate(parts)
    ]
    # Suppressed cells are not published: they enter neither side of a subtraction. Nor do
    # cells rounded to a base of at least max(T, 2 x their protection) (spec §11.1): the
    # difference of two of them is known only within a base either way.
    published = [
        cells.take(~part.hidden & ~_rounded_safely(part, threshold))
        for cells, part in zip(on_union, parts, strict=True)
    ]
    earlier = stack(published[:-1]) if released else None
    exact = differencing_findings(earlier, published[-1], threshold)
    lp = _lp_audit(parts, on_union, published, time_limit)
    offered: tuple[Mitigation, ...] = ()
    records = new.records
    if exact and records is not None:
        offered = mitigations(
            earlier,
            records.definition,
            column[offsets[-2] :][records.entity],
            records.codes,
            width,
            exact,
            threshold,
            values=records.values,
            measure=records.measure,
            weighted_by=records.weighted_by,
            protection_level=max(1.0, float(new.protection.max(initial=0.0))),
        )
    return LedgerAudit(exact, lp, offered)


def _rounded_safely(cells: OutputCells, threshold: int) -> BoolArray:
    """Per row, whether it is rounded to a base the exact check need not look at."""
    least = np.maximum(threshold, 2 * cells.protection)
    return np.asarray(cells.base > 0) & (cells.base >= least)


def _lp_audit(
    parts: Sequence[OutputCells],
    on_union: Sequence[Aggregates],
    published: Sequence[Aggregates],
    time_limit: float | None,
) -> tuple[LPFinding, ...]:
    """The LP audit of every hidden cell the new output (the last part) can expose: its own,
    and those released before whose component (entities linked through published cells)
    the new output reaches. The other hidden cells keep the interval they passed with, since
    the LP splits into components (see ``output_checker.ledger.lp_audit``)."""
    if not any(part.hidden.any() for part in parts):
        return ()
    shown = sparse.vstack([cells.weights for cells in published], format="csr")
    labels = components(shown, np.ones(shown.shape[0], dtype=bool))
    reached = np.zeros(int(labels.max(initial=-1)) + 1, dtype=bool)
    reached[labels[on_union[-1].weights.indices]] = True
    entity_reached = reached[labels].astype(np.float64)
    kept, targets, levels, lows, highs = [], [], [], [], []
    for part, cells in zip(parts, on_union, strict=True):
        target = part.hidden.copy()
        if part is not parts[-1]:
            target &= cells.weights @ entity_reached > 0
        rows = ~part.hidden | target  # other hidden cells are not published: leave them out
        kept.append(cells.take(rows))
        targets.append(target[rows])
        levels.append(part.protection[rows])
        low, high = part.known()
        lows.append(low[rows])
        highs.append(high[rows])
    target_mask = np.concatenate(targets)
    if not target_mask.any():
        return ()
    level = np.concatenate(levels)
    low, high = np.concatenate(lows), np.concatenate(highs)
    return lp_findings(
        None,
        stack(kept),
        target_mask,
        level,
        level,
        new_shown=(low + high) / 2,
        new_slack=(high - low) / 2,
        time_limit=time_limit,
    )


def _on_columns(aggregates: Aggregates, columns: npt.NDArray[np.intp], width: int) -> Aggregates:
    """``aggregates`` with its local entity columns renumbered into the union's."""
    weights = aggregates.weights
    moved = sparse.csr_matrix(
        (weights.data, columns[weights.indices], weights.indptr), shape=(weights.shape[0], width)
    )
    moved.sort_indices()
    return replace(aggregates, weights=moved)


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _cell(ref: CellRef) -> dict[str, Any]:
    return {"key": [str(label) for label in ref.key], "quantity": ref.quantity.label}


def report(
    result: LedgerAudit,
    threshold: int,
    outputs: Mapping[str, Mapping[str, Any]],
    released: int,
    unchecked: int,
) -> dict[str, Any]:
    """The audit as the review page shows it. ``outputs`` describes each other output by its
    label (name, request, release date); ``released`` counts the released outputs audited
    against and ``unchecked`` those that had no recipe, so the audit could not include them."""

    def where(label: str) -> Mapping[str, Any]:
        return outputs.get(label, {"label": "this output"} if label == THIS_OUTPUT else {})

    differencing = [
        {
            "cell": _cell(finding.new),
            "other": {**_cell(finding.other), "output": where(finding.other.output)},
            "isolated": finding.isolated,
            "nested": finding.nested,
        }
        for finding in result.differencing
    ]
    lp = [
        {
            "cell": _cell(finding.cell) | {"output": where(finding.cell.output)},
            # None: the audit ran out of time, or the attacker's bound is infinite
            "interval": [_finite(finding.lo), _finite(finding.hi)],
            "timed_out": bool(np.isnan(finding.lo) or np.isnan(finding.hi)),
            "earlier": [where(label) for label in finding.earlier_outputs],
        }
        for finding in result.lp
    ]
    earlier = {label for finding in result.differencing if (label := finding.other.output)} | {
        label for finding in result.lp for label in finding.earlier_outputs
    }
    return {
        "checked": True,
        "threshold": threshold,
        "released_outputs": released,
        "unchecked_outputs": unchecked,
        "differencing": differencing,
        "lp": lp,
        "mitigations": [offer.to_dict() for offer in result.mitigations],
        "earlier_outputs": sorted(str(where(label).get("label", label)) for label in earlier),
    }


def not_checked(reason: str) -> dict[str, Any]:
    """The report of an output the ledger cannot hold."""
    return {"checked": False, "reason": f"not checked against earlier releases: {reason}"}
