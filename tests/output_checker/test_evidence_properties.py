"""Property tests: the one-pass evidence and table values against slow, obvious references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from output_checker import check_table
from output_checker.evidence import compute_evidence

rows = st.integers(min_value=1, max_value=60)


@st.composite
def microdata(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(rows)
    ints = st.integers(min_value=0, max_value=2)
    value = st.one_of(
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False),
        st.just(float("nan")),
        st.sampled_from([0.0, 1.0, 5.0]),
    )
    return pd.DataFrame(
        {
            "a": draw(st.lists(ints, min_size=n, max_size=n)),
            "b": draw(st.lists(st.sampled_from(["x", "y"]), min_size=n, max_size=n)),
            "person": draw(st.lists(st.integers(0, 8), min_size=n, max_size=n)),
            "v": draw(st.lists(value, min_size=n, max_size=n)),
        }
    )


def reference_cell(group: pd.DataFrame, depth: int) -> dict[str, object]:
    """Evidence of one cell computed the slow, obvious way."""
    present = group.dropna(subset=["v"])
    per_person = present.groupby("person")["v"].sum()
    magnitudes = sorted(per_person.abs().tolist(), reverse=True)
    top = (magnitudes + [0.0] * depth)[:depth]
    return {
        "n_rows": len(group),
        "n_nonmissing": len(present),
        "n_entities": len(per_person),
        "n_negative": int((per_person < 0).sum()),
        "total": float(sum(magnitudes)),
        "top": top,
        "min": float(present["v"].min()) if len(present) else None,
        "max": float(present["v"].max()) if len(present) else None,
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(microdata())
def test_evidence_matches_reference(frame: pd.DataFrame) -> None:
    cells, levels = pd.factorize(pd.Series(list(zip(frame["a"], frame["b"], strict=True))))
    evidence = compute_evidence(
        cells.astype(np.intp),
        len(levels),
        frame["v"].to_numpy(dtype=float),
        pd.factorize(frame["person"])[0].astype(np.int64),
        depth=3,
    )
    frequency = compute_evidence(
        cells.astype(np.intp), len(levels), None, frame["person"].to_numpy(np.int64), depth=0
    )
    for code, key in enumerate(levels):
        group = frame[(frame["a"] == key[0]) & (frame["b"] == key[1])]
        assert frequency.n_entities[code] == group["person"].nunique()
        assert frequency.n_rows[code] == len(group)
        expected = reference_cell(group, 3)
        assert evidence.n_rows[code] == expected["n_rows"]
        assert evidence.n_nonmissing[code] == expected["n_nonmissing"]
        assert evidence.n_entities[code] == expected["n_entities"]
        assert evidence.n_negative[code] == expected["n_negative"]
        assert evidence.total[code] == pytest.approx(expected["total"], rel=1e-9, abs=1e-6)
        assert evidence.top[code].tolist() == pytest.approx(expected["top"], rel=1e-9, abs=1e-6)
        if expected["min"] is None:
            assert np.isnan(evidence.minimum[code]) and np.isnan(evidence.maximum[code])
        else:
            assert evidence.minimum[code] == expected["min"]
            assert evidence.maximum[code] == expected["max"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(microdata(), st.sampled_from(["sum", "mean", "median", "std", "var", "min", "max"]))
def test_table_values_match_pandas(frame: pd.DataFrame, agg: str) -> None:
    if frame["v"].isna().all():
        return  # refused as bad input; covered in test_bad_input
    result = check_table(frame, "a", "b", values="v", aggfunc=agg, margins=True)
    ours = result.to_frame()
    expected = pd.pivot_table(
        frame, index="a", columns="b", values="v", aggfunc=agg, margins=True, dropna=False
    )
    # pandas drops rows/columns that are entirely NaN; compare on the cells it shows
    for row in expected.index:
        for col in expected.columns:
            want = expected.loc[row, col]
            got = ours.loc[row, col]
            if agg == "sum" and pd.isna(want):
                continue
            if pd.isna(want):
                assert pd.isna(got) or agg == "sum"
            else:
                assert got == pytest.approx(want, rel=1e-6, abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(microdata())
def test_count_table_matches_crosstab(frame: pd.DataFrame) -> None:
    ours = check_table(frame, "a", "b", margins=True).to_frame()
    expected = pd.crosstab(frame["a"], frame["b"], margins=True)
    assert (ours.loc[expected.index, expected.columns].to_numpy() == expected.to_numpy()).all()
    # cells absent from the data are shown as zeros
    assert ours.to_numpy().sum() == 4 * len(frame)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(microdata(), st.booleans(), st.booleans(), st.integers(min_value=1, max_value=9))
def test_chunked_passes_and_rollups_equal_one_pass(
    frame: pd.DataFrame, with_entity: bool, weighted: bool, chunk: int
) -> None:
    """Evidence merged from small chunks (rows, or groups of entities) and totals rolled up
    from cells equal the evidence of a single pass over each level."""
    from output_checker.columns import TableRequest, prepare
    from output_checker.levels import evidence_by_level, parents

    frame = frame.assign(w=1.0 + frame["person"] % 3, b=frame["b"].where(frame["a"] != 2))
    labelled = frame["a"].notna() & frame["b"].notna()
    assume(labelled.any())  # some rows must keep all their labels
    request = TableRequest(
        index=("a",),
        columns=("b",),
        # a value variable with no value in the rows kept is an input error (tested elsewhere)
        values="v" if frame.loc[labelled, "v"].notna().any() else None,
        entity="person" if with_entity else None,
        weights="w" if weighted else None,
    )
    cols = prepare(frame, request)
    sizes = [len(levels) for levels in cols.levels]
    levels = [(0, 1), (0,), (1,), ()]
    chunked = evidence_by_level(cols, levels, depth=3, chunk_rows=chunk)
    chunked_cells = chunked[0].n_cells
    every = cols.take(slice(None))
    for dims, got in zip(levels, chunked, strict=True):
        n = int(np.prod([sizes[d] for d in dims]))
        cells = every.cells if len(dims) == 2 else parents(sizes, dims)[every.cells]
        want = compute_evidence(cells, n, every.values, every.entity, every.weights, 3)
        for name in want.__dataclass_fields__:
            if name != "top_weight":
                assert np.allclose(getattr(got, name), getattr(want, name), equal_nan=True), name
        # Equal contributions are interchangeable, so their weights may come in either order:
        # compare the weights of places whose value no other kept or dropped unit shares.
        top = want.top
        unique = (top > top[:, -1:]) & (np.diff(top, axis=1, prepend=np.inf) != 0)
        unique &= np.diff(top, axis=1, append=-np.inf) != 0
        assert np.allclose(got.top_weight[unique], want.top_weight[unique])
    assert chunked_cells == sizes[0] * sizes[1]
