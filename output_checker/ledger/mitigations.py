"""Mitigations the checker offers when a new output fails the differencing check (spec §11.1,
issue 11 item 3), each with its information loss and whether it resolves every finding.

* **merge**: per grouping variable, the level of each offending cell joins its neighbour (in
  level order) with fewer contributors; the table is rebuilt from the remapped codes and
  checked again, growing the merge a few rounds while findings remain.
* **drop**: the offending cells are suppressed, secondary suppression
  (:func:`output_checker.protection.protect`) keeps the margins from giving them back, and the
  result is audited against the ledger: :func:`lp_findings` on the suppressed primaries and
  :func:`differencing_findings` on the cells still published.
* **round**: conventional rounding to a base b resolves differencing iff
  b ≥ max(T, 2 × the largest protection level) (spec §11.1); its cost is the change of the
  cells.

Using the earlier output's population is left to the queue: it needs the earlier output's
definition, not this output's microdata. Merges change one variable, or two when no single
variable resolves: the first's offending levels joined once, then the second searched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from enum import Enum
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse

from output_checker.columns import ALL, Label
from output_checker.errors import InputError
from output_checker.ledger.aggregates import (
    Aggregates,
    CellRef,
    Kind,
    Quantity,
    TableDefinition,
    table_aggregates,
)
from output_checker.ledger.differencing import (
    DifferencingFinding,
    IndexedRows,
    differencing_findings,
    index_rows,
)
from output_checker.ledger.lp_audit import lp_findings
from output_checker.protection import TableModel, protect
from output_checker.results import json_scalar
from output_checker.status import Status

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

ROUNDING_BASES = (5, 10)
MERGE_ROUNDS = 4  # growth rounds of one merge before it is given up
MERGE_STARTS = 5  # offending levels tried one at a time, besides all of them together


class MitigationKind(Enum):
    MERGE = "merge"
    DROP = "drop"
    ROUND = "round"


@dataclass(frozen=True)
class Cost:
    """Information lost: cells suppressed, levels merged away, or the mean and largest
    absolute change of the cells, with a one-line ``text`` for the researcher."""

    text: str
    cells_suppressed: int = 0
    levels_merged: int = 0
    mean_abs_change: float = 0.0
    max_abs_change: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "cells_suppressed": self.cells_suppressed,
            "levels_merged": self.levels_merged,
            "mean_abs_change": self.mean_abs_change,
            "max_abs_change": self.max_abs_change,
        }


@dataclass(frozen=True)
class LevelMerge:
    """Levels of one grouping variable published as one, under ``label``."""

    variable: str
    levels: tuple[Label, ...]
    label: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "variable": self.variable,
            "levels": [json_scalar(level) for level in self.levels],
            "label": self.label,
        }


@dataclass(frozen=True)
class SuppressedCell:
    key: tuple[Label, ...]
    primary: bool  # an offending cell; otherwise suppressed to protect one

    def to_dict(self) -> dict[str, Any]:
        return {"key": [json_scalar(label) for label in self.key], "primary": self.primary}


@dataclass(frozen=True)
class Mitigation:
    """One way to change the new output, its cost and whether the changed output passes the
    ledger's checks; ``unresolved`` says, one line each, what still fails. ``base``,
    ``merges`` or ``suppressed`` say exactly what to change (by kind)."""

    kind: MitigationKind
    description: str
    cost: Cost
    resolves: bool
    unresolved: tuple[str, ...] = ()
    base: int | None = None
    merges: tuple[LevelMerge, ...] = ()
    suppressed: tuple[SuppressedCell, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "description": self.description,
            "cost": self.cost.to_dict(),
            "resolves": self.resolves,
            "unresolved": list(self.unresolved),
            "base": self.base,
            "merges": [merge.to_dict() for merge in self.merges],
            "suppressed": [cell.to_dict() for cell in self.suppressed],
        }


@dataclass(frozen=True)
class Microdata:
    """A table with the records it was made from, as :func:`table_aggregates` takes them, so
    it can be rebuilt with levels merged."""

    definition: TableDefinition
    entity: IntArray
    codes: tuple[npt.NDArray[np.integer[Any]], ...]
    n_entities: int
    values: FloatArray | None
    measure: str | None
    weighted_by: str | None = None

    def aggregates(self) -> Aggregates:
        return table_aggregates(
            self.definition,
            self.entity,
            self.codes,
            self.n_entities,
            self.values,
            self.measure,
            weighted_by=self.weighted_by,
        )

    def merged(self, variable: int, group: IntArray, labels: tuple[Label, ...]) -> Microdata:
        """This table with level ``l`` of ``variable`` published as level ``group[l]``."""
        old = self.codes[variable]
        codes = list(self.codes)
        codes[variable] = np.where(old >= 0, group[np.maximum(old, 0)], old).astype(np.intp)
        levels = list(self.definition.levels)
        levels[variable] = labels
        definition = TableDefinition(
            self.definition.output,
            self.definition.variables,
            tuple(levels),
            self.definition.n_index,
            self.definition.margins,
            self.definition.hierarchical,
        )
        return replace(self, definition=definition, codes=tuple(codes))

    def contributors(self, variable: int, n_levels: int) -> IntArray:
        """Distinct entities per level of ``variable`` among the records in some cell."""
        present = np.all([code >= 0 for code in self.codes], axis=0)
        pairs = np.unique(
            self.codes[variable][present].astype(np.int64) * self.n_entities + self.entity[present]
        )
        return np.bincount(pairs // self.n_entities, minlength=n_levels).astype(np.int64)


@dataclass(frozen=True)
class _Ledger:
    """What every candidate is checked against."""

    indexed: IndexedRows | None
    threshold: int
    bounds: Mapping[Quantity, tuple[float, float]] | None

    @property
    def released(self) -> Aggregates | None:
        return None if self.indexed is None else self.indexed.aggregates

    def findings(self, new: Aggregates) -> tuple[DifferencingFinding, ...]:
        return differencing_findings(self.indexed, new, self.threshold)


def mitigations(
    released: Aggregates | IndexedRows | None,
    table: TableDefinition,
    entity: npt.ArrayLike,
    codes: Sequence[npt.ArrayLike],
    n_entities: int,
    findings: Sequence[DifferencingFinding],
    threshold: int,
    *,
    values: npt.ArrayLike | None = None,
    measure: str | None = None,
    weighted_by: str | None = None,
    protection_level: float = 1.0,
    bases: Sequence[int] = ROUNDING_BASES,
    max_merges: int = 3,
    bounds: Mapping[Quantity, tuple[float, float]] | None = None,
) -> tuple[Mitigation, ...]:
    """The mitigations of ``findings`` (from :func:`differencing_findings` of ``table``
    against ``released``): the cheapest merges that resolve (at most ``max_merges``), the
    drop, and rounding to each of ``bases``, in that order. Findings of other outputs are
    ignored; without findings of this table nothing needs mitigating.

    The table and its microdata are given as to :func:`table_aggregates` (``weighted_by``
    too: ``values`` already multiplied by the weights).
    ``protection_level`` is the largest protection level of an isolated aggregate (1, exact
    disclosure, for counts; give the sum's level for a magnitude table): it sets the minimum
    rounding base and the drop's protection. ``bounds`` are the attacker's a-priori bounds
    per entity value, as for :func:`lp_findings`.
    """
    if not np.isfinite(protection_level) or protection_level <= 0:
        raise InputError("the protection level must be a positive number")
    if any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in bases):
        raise InputError("rounding bases must be positive whole numbers")
    if max_merges < 0:
        raise InputError("max_merges must not be negative")
    data = Microdata(
        table,
        np.asarray(entity, dtype=np.int64),
        tuple(np.asarray(code) for code in codes),
        n_entities,
        None if values is None else np.asarray(values, dtype=np.float64),
        measure,
        weighted_by,
    )
    new = data.aggregates()  # validates the microdata
    ours = [
        f for f in findings if f.new.output == table.output and f.new.quantity in new.quantities
    ]
    if not ours:
        return ()
    if isinstance(released, Aggregates):
        released = index_rows(released)  # once, for every candidate's check
    ledger = _Ledger(released, threshold, bounds)
    involved = _rows_of(new, [ref for f in ours for ref in _new_cells(f)])
    values_of_cells = _cell_values(new)
    return (
        *_merge_mitigations(data, new, involved, ledger, max_merges),
        _drop_mitigation(data, new, _primaries(new, ours, ledger), ledger, protection_level),
        *(_round_mitigation(values_of_cells, base, threshold, protection_level) for base in bases),
    )


# ----- merge -----------------------------------------------------------------------------------
_Checked = tuple[Aggregates, tuple[DifferencingFinding, ...]]  # a merged table, its findings


def _merge_mitigations(
    data: Microdata, new: Aggregates, involved: IntArray, ledger: _Ledger, max_merges: int
) -> list[Mitigation]:
    """The cheapest merges that resolve: of one variable's levels if any does, else of two
    variables' (one variable's offending levels joined once, then the other's searched)."""
    found = [[step] for step in _resolving_merges(data, new, involved, ledger)]
    if not found:
        for d, first, once in _first_joins(data, new, involved):
            table = once.aggregates()
            remaining = ledger.findings(table)
            rows = _rows_of(table, [ref for f in remaining for ref in _new_cells(f)])
            pairs = _resolving_merges(once, table, rows, ledger, skip=d)
            found += [[_MergeStep(data, d, first, pair.merged), pair] for pair in pairs]
    ranked = sorted((_describe_merge(new, steps) for steps in found), key=lambda item: item[0])
    offers: dict[frozenset[LevelMerge], Mitigation] = {}  # two orders can meet in one merge
    for _, mitigation in ranked:
        offers.setdefault(frozenset(mitigation.merges), mitigation)
    return list(offers.values())[:max_merges]


@dataclass(frozen=True)
class _MergeStep:
    """Variable ``d`` of ``data`` grouped by ``group``; ``merged`` is the table after it."""

    data: Microdata
    d: int
    group: IntArray
    merged: Aggregates


def _resolving_merges(
    data: Microdata, new: Aggregates, involved: IntArray, ledger: _Ledger, skip: int = -1
) -> list[_MergeStep]:
    """Per variable (but ``skip``), the groupings of its levels that resolve every finding:
    all offending levels joined at once, then a few alone (smallest first), each grown."""
    steps = []
    for d, size in enumerate(data.definition.sizes):
        hit = _offending_levels(new, involved, d)
        if d == skip or size < 2 or not hit.size:
            continue
        identity = np.arange(size, dtype=np.int64)
        contributors = data.contributors(d, size)
        alone = hit[np.argsort(contributors[hit], kind="stable")][:MERGE_STARTS]
        starts = [_join(identity, hit, contributors)]
        starts += [_join(identity, np.array([level]), contributors) for level in alone]
        checked: dict[tuple[int, ...], _Checked] = {}
        resolving: dict[tuple[int, ...], Aggregates] = {}
        for start in starts:
            grown = _grow(data, d, start, ledger, checked)
            if grown is not None:
                resolving[tuple(grown.tolist())] = checked[tuple(grown.tolist())][0]
        steps += [
            _MergeStep(data, d, np.asarray(group, dtype=np.int64), merged)
            for group, merged in resolving.items()
        ]
    return steps


def _first_joins(
    data: Microdata, new: Aggregates, involved: IntArray
) -> list[tuple[int, IntArray, Microdata]]:
    """Per variable with offending levels (and more than two levels, so a level stays), its
    offending levels joined once to their neighbours, with the records so merged."""
    joins = []
    for d, size in enumerate(data.definition.sizes):
        hit = _offending_levels(new, involved, d)
        if size < 3 or not hit.size:
            continue
        group = _join(np.arange(size, dtype=np.int64), hit, data.contributors(d, size))
        if int(group.max()) + 1 < 2:
            continue
        labels = _merged_labels(data.definition.levels[d], group)
        joins.append((d, group, data.merged(d, group, labels)))
    return joins


def _offending_levels(new: Aggregates, involved: IntArray, d: int) -> IntArray:
    """The levels of variable ``d`` that the ``involved`` rows of ``new`` fix (not totals)."""
    hit = np.unique(new.grids[0].codes[involved, d])
    return np.asarray(hit[hit >= 0], dtype=np.int64)


def _join(group: IntArray, hit: npt.NDArray[np.integer[Any]], contributors: IntArray) -> IntArray:
    """``group`` (level → contiguous group) with each hit group joined to its neighbour that
    has fewer contributors (the lower one on a tie)."""
    n_groups = int(group.max()) + 1
    join = np.zeros(max(n_groups - 1, 0), dtype=bool)  # join[g]: groups g and g+1 become one
    for g in np.unique(hit).tolist():
        below = g - 1 if g > 0 else None
        above = g + 1 if g < n_groups - 1 else None
        if below is not None and (above is None or contributors[below] <= contributors[above]):
            join[below] = True
        elif above is not None:
            join[g] = True
    renumber = np.concatenate([[0], np.cumsum(~join)]).astype(np.int64)
    return renumber[group]


def _grow(
    data: Microdata,
    d: int,
    group: IntArray,
    ledger: _Ledger,
    checked: dict[tuple[int, ...], _Checked],
) -> IntArray | None:
    """``group`` grown until the merged table has no finding, or None if it never does.
    ``checked`` remembers every grouping tried, so starts that meet are checked once."""
    for _ in range(MERGE_ROUNDS):
        key = tuple(group.tolist())
        merged = data.merged(d, group, _merged_labels(data.definition.levels[d], group))
        if key not in checked:
            table = merged.aggregates()
            checked[key] = table, ledger.findings(table)
        table, remaining = checked[key]
        if not remaining:
            return group
        n_groups = int(group.max()) + 1
        rows = _rows_of(table, [ref for f in remaining for ref in _new_cells(f)])
        hit = _offending_levels(table, rows, d)
        if n_groups < 2 or not hit.size:  # what remains is a total over this variable
            return None
        group = _join(group, hit, merged.contributors(d, n_groups))
    return None


def _merged_labels(levels: tuple[Label, ...], group: IntArray) -> tuple[Label, ...]:
    """One label per group: the level itself, or the levels joined by "+"."""
    starts = np.flatnonzero(np.r_[True, np.diff(group) != 0])
    ends = np.r_[starts[1:], group.shape[0]]
    labels: list[Label] = []
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        joined = "+".join(str(level) for level in levels[start:end])
        labels.append(levels[start] if end - start == 1 else joined)
    return tuple(labels)


def _describe_merge(
    new: Aggregates, steps: Sequence[_MergeStep]
) -> tuple[tuple[int, int], Mitigation]:
    """The merge mitigation of ``steps`` (one or two variables) and its rank (levels merged
    away, then entities in merged groups)."""
    merges: list[LevelMerge] = []
    lost = moved = 0
    changes, words = [], []
    for step in steps:
        variable = step.data.definition.variables[step.d]
        levels = step.data.definition.levels[step.d]
        labels = _merged_labels(levels, step.group)
        sizes = np.bincount(step.group)
        joined = [
            LevelMerge(
                variable,
                tuple(levels[i] for i in np.flatnonzero(step.group == g)),
                str(labels[g]),
            )
            for g in np.flatnonzero(sizes > 1).tolist()
        ]
        merges += joined
        lost += len(levels) - len(labels)
        in_merged = np.isin(step.group, np.flatnonzero(sizes > 1))
        moved += int(step.data.contributors(step.d, len(levels))[in_merged].sum())
        changes.append(f"{variable}: {len(levels)} levels become {len(labels)}")
        words.append(
            f"{variable} levels " + "; ".join(_and([str(lv) for lv in m.levels]) for m in joined)
        )
    merged = steps[-1].merged
    text = "; ".join(changes) + f"; the table shows {merged.n_rows} cells instead of {new.n_rows}"
    mitigation = Mitigation(
        MitigationKind.MERGE,
        "merge " + ", and ".join(words),
        Cost(text, levels_merged=lost),
        resolves=True,
        merges=tuple(merges),
    )
    return (lost, moved), mitigation


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


# ----- drop ------------------------------------------------------------------------------------
def _drop_mitigation(
    data: Microdata, new: Aggregates, offending: IntArray, ledger: _Ledger, level: float
) -> Mitigation:
    model, cell = _model(data.definition, new)
    values = np.zeros(model.n_cells)
    values[cell] = _cell_values(new)
    try:
        model.check_additive(values)
    except InputError:
        reason = (
            "the table is not additive (an entity falls in more than one cell), so secondary "
            "suppression cannot protect its cells"
        )
        return Mitigation(
            MitigationKind.DROP,
            f"suppress {offending.shape[0]} cells and protect them",
            Cost("not computed: " + reason),
            resolves=False,
            unresolved=(reason,),
        )
    if not offending.size:
        reason = "every offending cell was released already, so suppressing it hides nothing"
        return Mitigation(
            MitigationKind.DROP,
            "suppress nothing",
            Cost("nothing suppressed"),
            resolves=False,
            unresolved=(reason,),
        )
    primary = np.zeros(model.n_cells, dtype=bool)
    primary[cell[offending]] = True
    lower, upper = _table_bounds(data, new, ledger)
    result = protect(model, values, primary, level, level, lower=lower, upper=upper)
    hidden = result.suppressed[cell]
    is_primary = result.primary[cell]
    n_primary, n_hidden = int(is_primary.sum()), int(hidden.sum())

    unresolved = [f"secondary suppression: {result.reason}"] if result.status != Status.PASS else []
    protect_levels = np.where(is_primary, level, 0.0)
    primary_refs = {new.ref(r) for r in np.flatnonzero(is_primary).tolist()}
    pinned = [
        f
        for f in lp_findings(
            ledger.released, new, hidden, protect_levels, protect_levels, bounds=ledger.bounds
        )
        if f.cell in primary_refs  # a secondary pinned down is published in effect: no harm
    ]
    if pinned:
        earlier = sorted({o for f in pinned for o in f.earlier_outputs})
        unresolved.append(
            f"{len(pinned)} suppressed cell(s) are narrowed to within their protection level"
            + (f" with the help of {', '.join(earlier)}" if earlier else "")
        )
    remaining = ledger.findings(_subset(new, ~hidden))
    if remaining:
        unresolved.append(
            f"{len(remaining)} pair(s) of published cells still differ by fewer than "
            f"{ledger.threshold} entities"
        )
    suppressed = tuple(
        SuppressedCell(new.ref(r).key, bool(is_primary[r])) for r in np.flatnonzero(hidden).tolist()
    )
    what = f"{n_hidden} cells ({n_primary} primary, {n_hidden - n_primary} secondary)"
    return Mitigation(
        MitigationKind.DROP,
        f"suppress {what}",
        Cost(f"{n_hidden} of {new.n_rows} cells suppressed", cells_suppressed=n_hidden),
        resolves=not unresolved,
        unresolved=tuple(unresolved),
        suppressed=suppressed,
    )


def _new_cells(finding: DifferencingFinding) -> tuple[CellRef, ...]:
    return (finding.new, finding.other) if finding.other_is_new else (finding.new,)


def _primaries(
    new: Aggregates, findings: Sequence[DifferencingFinding], ledger: _Ledger
) -> IntArray:
    """The cells the drop suppresses: each finding's new cell or, in a pair of new cells, the
    other one when the first is public already (a released cell has exactly its contributors,
    so hiding it hides nothing). A finding with no such cell is left to the check of what
    stays published, which reports it."""
    involved = _rows_of(new, [ref for f in findings for ref in _new_cells(f)])
    row_of = {new.ref(r): r for r in involved.tolist()}
    public = set(involved[_public(new, involved, ledger)].tolist())
    chosen: set[int] = set()
    for finding in findings:
        hideable = [row_of[ref] for ref in _new_cells(finding) if row_of[ref] not in public]
        chosen.update(hideable[:1])
    return np.asarray(sorted(chosen), dtype=np.int64)


def _public(new: Aggregates, rows: IntArray, ledger: _Ledger) -> BoolArray:
    """Per row of ``rows``, whether a released row of the same quantity has exactly its
    contributors."""
    if ledger.indexed is None or not rows.size:
        return np.zeros(rows.shape[0], dtype=bool)
    released = ledger.indexed
    width = released.by_entity.shape[0]
    weights = new.weights[rows].tocsr()
    if weights.shape[1] > width:  # entities the ledger never saw: such a row equals none
        weights = weights[:, :width].tocsr()
    pattern = sparse.csr_matrix(
        (np.ones(weights.nnz), weights.indices, weights.indptr), shape=(rows.shape[0], width)
    )
    shared = (pattern @ released.by_entity).tocoo()
    same_quantity = [c for c, q in enumerate(released.aggregates.quantities) if q in new.quantities]
    size = np.diff(new.weights.indptr)[rows]
    match = (
        (shared.data == size[shared.row])
        & (shared.data == released.size[shared.col])
        & np.isin(released.aggregates.quantity_of[shared.col], same_quantity)
    )
    public = np.zeros(rows.shape[0], dtype=bool)
    public[shared.row[match]] = True
    return public


def _model(table: TableDefinition, new: Aggregates) -> tuple[TableModel, IntArray]:
    """The table's published cells as a two-dimensional model (row keys by column keys, each
    with its totals) and the model cell of each row of ``new``."""
    codes = new.grids[0].codes
    p = table.n_index
    positions, n_keys, hierarchies = [], [], []
    for side in (list(range(p)), list(range(p, len(table.variables)))):
        if side:
            keys, position = np.unique(codes[:, side], axis=0, return_inverse=True)
        else:
            keys, position = np.zeros((1, 0), dtype=np.intp), np.zeros(codes.shape[0], np.intp)
        positions.append(position.ravel().astype(np.int64))
        n_keys.append(keys.shape[0])
        hierarchies.append(_hierarchy(keys))
    if n_keys[0] * n_keys[1] != new.n_rows:
        raise InputError("the table's published cells do not form a grid of row and column keys")
    model = TableModel.from_dimensions([range(n) for n in n_keys], hierarchies)
    return model, positions[0] * n_keys[1] + positions[1]


def _hierarchy(keys: npt.NDArray[np.intp]) -> dict[int, list[int]]:
    """Parent → children among one side's keys (-1 marks a total): a total's children are the
    keys of the next finer level present that share its leading codes."""
    depth = (keys >= 0).cumprod(axis=1).sum(axis=1)
    hierarchy: dict[int, list[int]] = {}
    for parent in np.flatnonzero(depth < keys.shape[1]).tolist():
        level = int(depth[parent])
        finer = depth[depth > level].min()
        same = (keys[:, :level] == keys[parent, :level]).all(axis=1)
        hierarchy[parent] = np.flatnonzero(same & (depth == finer)).tolist()
    return hierarchy


def _table_bounds(data: Microdata, new: Aggregates, ledger: _Ledger) -> tuple[float, float]:
    """A-priori bounds of a cell for secondary suppression, from those of each entity's value
    that the ledger's audit uses (a count's entity adds 0 or 1; a sum's between 0 and the
    largest cell of that sum, unless ``bounds`` says otherwise): a cell holds at most every
    entity. The table's own largest cell, the usual bound, would leave a suppressed grand
    total no room upwards."""
    quantity = new.quantities[0]
    if ledger.bounds is not None and quantity in ledger.bounds:
        low, high = ledger.bounds[quantity]
    elif quantity.kind is Kind.COUNT:
        low, high = 0.0, 1.0
    else:
        cells = [_cell_values(new)]
        if ledger.released is not None:
            released = ledger.released
            same = [code for code, q in enumerate(released.quantities) if q == quantity]
            cells.append(_cell_values(released)[np.isin(released.quantity_of, same)])
        largest = np.abs(np.concatenate(cells)).max(initial=0.0)
        low, high = -largest if (cells[0] < 0).any() else 0.0, largest
    return data.n_entities * min(low, 0.0), data.n_entities * max(high, 0.0)


# ----- round -----------------------------------------------------------------------------------
def _round_mitigation(
    values: FloatArray, base: int, threshold: int, protection_level: float
) -> Mitigation:
    minimum = max(threshold, 2 * protection_level)
    change = np.abs(base * np.floor(values / base + 0.5) - values)  # half rounds up
    mean = float(change.mean()) if change.size else 0.0
    largest = float(change.max(initial=0.0))
    resolves = base >= minimum
    unresolved = (
        ()
        if resolves
        else (
            f"base {base} is below the minimum base {minimum:g} = max(T, 2 × protection "
            "level): rounded cells still narrow the differences down too far",
        )
    )
    suffix = "" if resolves else f" (does not resolve: the minimum base is {minimum:g})"
    return Mitigation(
        MitigationKind.ROUND,
        f"round to base {base}{suffix}",
        Cost(
            f"cells change by {mean:.3g} on average, by at most {largest:g}",
            mean_abs_change=mean,
            max_abs_change=largest,
        ),
        resolves=resolves,
        unresolved=unresolved,
        base=base,
    )


# ----- shared ----------------------------------------------------------------------------------
def _cell_values(aggregates: Aggregates) -> FloatArray:
    return np.asarray(aggregates.weights.sum(axis=1), dtype=np.float64).ravel()


def _subset(aggregates: Aggregates, keep: BoolArray) -> Aggregates:
    """The rows of ``aggregates`` where ``keep``. Every per-row array is subset, whatever
    fields the ledger's rows carry."""
    rows = np.flatnonzero(keep)
    per_row: dict[str, Any] = {
        field.name: value[rows]
        for field in fields(aggregates)
        if isinstance(value := getattr(aggregates, field.name), np.ndarray)
        and value.shape == (aggregates.n_rows,)
    }
    return replace(aggregates, weights=aggregates.weights[rows].tocsr(), **per_row)


def _rows_of(new: Aggregates, refs: Sequence[CellRef]) -> IntArray:
    """The rows of a single table's ``new`` showing the cells ``refs`` (each once, sorted)."""
    grid = new.grids[0]
    lookup = [{level: code for code, level in enumerate(levels)} for levels in grid.levels]
    try:
        wanted = np.array(
            [
                [-1 if label == ALL else lookup[d][label] for d, label in enumerate(ref.key)]
                for ref in dict.fromkeys(refs)
            ],
            dtype=np.intp,
        ).reshape(-1, len(grid.levels))
    except KeyError as error:
        raise InputError(f"a finding names the level {error.args[0]!r}, unknown here") from None
    published, looked_for = (
        _cell_numbers(grid.codes, grid.levels),
        _cell_numbers(wanted, grid.levels),
    )
    order = np.argsort(published)
    at = order[np.minimum(np.searchsorted(published, looked_for, sorter=order), order.size - 1)]
    if (published[at] != looked_for).any():
        raise InputError("a finding names a cell the table does not publish")
    return np.unique(at).astype(np.int64)


def _cell_numbers(codes: npt.NDArray[np.intp], levels: tuple[tuple[Label, ...], ...]) -> IntArray:
    """One number per cell key (codes with -1 for a total), distinct for distinct keys."""
    if not levels:
        return np.zeros(codes.shape[0], dtype=np.int64)
    dims = tuple(len(variable) + 1 for variable in levels)
    return np.asarray(np.ravel_multi_index(tuple((codes + 1).T), dims), dtype=np.int64)
