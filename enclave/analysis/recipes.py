"""Recipes: how the queue can re-derive a table from a registered dataset.

The format is the queue's (``output_checker/queue/recipes.py``, bundle_version 1); it is
written here from scratch because the analysis library never imports the queue's internals.
A recipe exists only for a table built from a registered dataset as loaded (plus filters
applied with ``where``) with a request the format can express; every other output gets a
:class:`Provenance` that says why it has none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from enclave.analysis.datasets import Source
from enclave.analysis.outputs import Provenance

NO_RECIPE_TRANSFORMED = "no recipe: built from a researcher-transformed frame"
NO_RECIPE_KIND = "no recipe: the queue re-derives tables only"


def table_recipe(
    source: Source,
    *,
    index: Sequence[str],
    columns: Sequence[str],
    values: str | None,
    aggregation: str,
    entity: str | None,
    margins: bool,
    protect: bool,
    round_to: int | None = None,
) -> dict[str, Any]:
    """The recipe of one table in the queue's JSON form; ``round`` is the base every
    published value is rounded to (null: exact), which the queue applies when it re-derives
    the table and which the differencing ledger reads as intervals."""
    return {
        "dataset": source.dataset,
        "version": source.version,
        "filters": [f.to_dict() for f in source.filters],
        "grouping": {"index": list(index), "columns": list(columns)},
        "values": values,
        "aggregation": aggregation if values is not None else "count",
        "entity": entity,
        "weights": None,
        "margins": margins,
        "protect": protect,
        "round": round_to,
    }


def provenance_of(source: Source | None, *, table: bool, round_to: int | None = None) -> Provenance:
    """How a reviewer should read the output's origin."""
    if source is None:
        return Provenance(recipe=False, label=NO_RECIPE_TRANSFORMED)
    filtered = f" filtered by {len(source.filters)} condition(s)" if source.filters else ""
    where = f"{source.dataset}{filtered} ({source.version[:19]}…)"
    rounded = f", rounded to base {round_to}" if round_to is not None else ""
    if table:
        return Provenance(
            recipe=True,
            label=f"recipe: re-derivable from registered dataset {where}{rounded}",
            dataset=source.dataset,
            version=source.version,
        )
    return Provenance(
        recipe=False,
        label=f"{NO_RECIPE_KIND}; built from registered dataset {where}",
        dataset=source.dataset,
        version=source.version,
    )
