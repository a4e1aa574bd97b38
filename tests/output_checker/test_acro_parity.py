"""Parity of ``check_table(..., conventions="acro")`` with real ACRO 1.0.2 (spec §12).

Every table is built from seeded numpy data, checked by ACRO (``suppress=False``) and by the
checker in ACRO mode, and the cells each flags are compared per check: MinimumThresholdCheck,
NKCheck, PPercentCheck and PresenceOfZeroCheck. ACRO's flagged cells are the integer
positions it records in ``Record.sdc["cells"]`` (from the check masks); ours are mapped to
positions through the labels of the table ACRO returned, so label order is compared too.
ACRO's known defects (§12.1: margins with suppression, std, callable or unknown aggfunc) are
not exercised. The A-cases of §12.5 are rebuilt from generated data with the same cell counts.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest

from output_checker import check_table
from output_checker.results import TableResult

pytestmark = pytest.mark.parity

CHECKS = {
    "threshold": "MinimumThresholdCheck",
    "nk": "NKCheck",
    "p_percent": "PPercentCheck",
    "zero": "PresenceOfZeroCheck",
}
Cells = set[tuple[int, int]]


@pytest.fixture
def session(acro: ModuleType) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return acro.ACRO(suppress=False)


def run_acro(session: Any, call: Callable[[Any], pd.DataFrame]) -> tuple[pd.DataFrame, Any]:
    """ACRO's table and its record for one call."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = call(session)
    return table, session.results.get_index(-1)


def acro_cells(record: Any) -> dict[str, Cells]:
    """Cells ACRO flagged, per rule id (only the checks ACRO ran)."""
    cells = record.sdc["cells"]
    return {
        rule: {tuple(p) for p in cells[check]} for rule, check in CHECKS.items() if check in cells
    }


def _position(labels: pd.Index, key: list[Any]) -> int:
    label = key[0] if len(key) == 1 else tuple(key)
    position = labels.get_loc(label)
    assert isinstance(position, int), f"label {label!r} is not unique in ACRO's table"
    return position


def our_cells(result: TableResult, table: pd.DataFrame) -> tuple[dict[str, Cells], dict]:
    """Cells our ACRO mode flags (status not pass), per rule, placed by ACRO's table labels."""
    record = result.to_dict()
    flagged: dict[str, Cells] = {rule: set() for rule in CHECKS if rule in record["rules"]}
    assert len(record["cells"]) == table.size
    for cell in record["cells"]:
        row = _position(table.index, cell["index"])
        col = _position(table.columns, cell["columns"]) if cell["columns"] else 0
        for rule in flagged:
            if cell["checks"][rule]["status"] != "pass":
                flagged[rule].add((row, col))
    return flagged, record


def assert_parity(session: Any, call: Callable[[Any], pd.DataFrame], result: TableResult) -> dict:
    """Same checks, same flagged cells, same per-check and output status. Returns ACRO's cells."""
    table, record = run_acro(session, call)
    theirs = acro_cells(record)
    ours, ours_record = our_cells(result, table)
    assert set(ours) == set(theirs), "different checks ran"
    for rule in theirs:
        assert ours[rule] == theirs[rule], f"{rule}: ours {ours[rule]} vs ACRO {theirs[rule]}"
        acro_status = record.fair["check_status"][CHECKS[rule]]
        counts = ours_record["rules"][rule]
        our_status = "fail" if counts["fail"] else "review" if counts["review"] else "pass"
        assert our_status == acro_status, rule
    assert ours_record["status"] == record.status
    return theirs


# ----- generated data ---------------------------------------------------------------------------
def _block(a: str, b: str, values: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"a": a, "b": b, "inc": np.asarray(values, dtype=float)})


def tricky_frame(seed: int) -> pd.DataFrame:
    """A 7 × 3 table with one labelled hazard per cell of rows D..G (see the asserts below)."""
    rng = np.random.default_rng(seed)
    parts = [
        _block(a, b, np.round(rng.lognormal(3, 0.4, rng.integers(12, 30)), 2))
        for a in "ABC"
        for b in "pqr"
    ]
    small = np.round(rng.lognormal(0, 0.2, 14), 2)
    parts += [
        _block("D", "p", rng.lognormal(3, 0.4, 4)),  # small cell; D/r stays empty
        _block("D", "q", np.r_[5000.0, small]),  # one dominant contributor
        _block("E", "p", np.zeros(12)),  # all-zero cell
        _block("E", "q", np.r_[np.full(6, np.nan), rng.lognormal(3, 0.4, 6)]),  # NaNs
        _block("E", "r", np.r_[1000.0, 1000.0, small[:12]]),  # tied dominant pair
        _block("F", "p", np.full(11, np.nan)),  # rows but no values
        _block("F", "q", np.r_[45.0, 45.0, 10.0, np.zeros(9)]),  # NK ratio exactly 0.90
        _block("F", "r", np.r_[100.0, 50.0, 10.0, np.zeros(9)]),  # p ratio exactly 0.10
        _block("G", "r", np.r_[50.0, 50.0, 50.0, np.full(9, 0.5)]),  # three-way tie
        _block("G", "p", rng.lognormal(3, 0.4, 15)),
        _block("G", "q", rng.lognormal(3, 0.4, 9)),
    ]
    frame = pd.concat(parts, ignore_index=True)
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


@pytest.fixture(scope="module")
def tricky() -> pd.DataFrame:
    return tricky_frame(7)


def test_mean_2d_parity_and_hazards(session: Any, tricky: pd.DataFrame) -> None:
    df = tricky
    theirs = assert_parity(
        session,
        lambda s: s.crosstab(df.a, df.b, values=df.inc, aggfunc="mean"),
        check_table(df, "a", "b", values="inc", aggfunc="mean", conventions="acro"),
    )
    rows, cols = "ABCDEFG", "pqr"

    def at(a: str, b: str) -> tuple[int, int]:
        return rows.index(a), cols.index(b)

    # the data exercise what they claim to: each hazard is flagged as ACRO 1.0.2 flags it
    assert at("D", "p") in theirs["threshold"] and at("D", "r") in theirs["threshold"]
    assert at("E", "q") not in theirs["threshold"]  # 12 rows, 6 values: ACRO counts rows
    assert at("F", "p") not in theirs["threshold"]  # 11 rows, no value
    assert {at("D", "q"), at("E", "r"), at("F", "q"), at("F", "r")} <= theirs["nk"]
    assert at("G", "r") not in theirs["nk"]  # ties do not widen the top 2
    assert not {at("E", "p"), at("D", "r"), at("F", "p")} & theirs["nk"]  # 0/0 not flagged
    assert {at("D", "q"), at("E", "r"), at("E", "p")} <= theirs["p_percent"]  # all-zero cell
    assert not {at("F", "r"), at("D", "r"), at("F", "p")} & theirs["p_percent"]


@pytest.mark.parametrize("aggfunc", ["sum", "mean"])
def test_pivot_2d_parity(session: Any, tricky: pd.DataFrame, aggfunc: str) -> None:
    df = tricky
    assert_parity(
        session,
        lambda s: s.pivot_table(df, values="inc", index="a", columns="b", aggfunc=aggfunc),
        check_table(df, "a", "b", values="inc", aggfunc=aggfunc, conventions="acro"),
    )


def test_count_2d_parity_with_empty_cell(session: Any, tricky: pd.DataFrame) -> None:
    df = tricky
    theirs = assert_parity(
        session,
        lambda s: s.crosstab(df.a, df.b),
        check_table(df, "a", "b", conventions="acro"),
    )
    assert theirs["zero"] == {(3, 2)}  # D/r
    assert (3, 2) in theirs["threshold"]


@pytest.mark.parametrize("index", ["a", "b"])
@pytest.mark.parametrize("aggfunc", ["mean", "count"])
def test_one_dimensional_parity(
    session: Any, tricky: pd.DataFrame, index: str, aggfunc: str
) -> None:
    df = tricky
    assert_parity(
        session,
        lambda s: s.pivot_table(df, values="inc", index=index, aggfunc=aggfunc),
        check_table(df, index, values="inc", aggfunc=aggfunc, conventions="acro"),
    )


def test_one_dimensional_counts_non_missing_values(session: Any) -> None:
    # 1-D tables count values, not rows: x has 12 rows but 7 values; z has none
    df = pd.DataFrame(
        {
            "a": ["x"] * 12 + ["y"] * 12 + ["z"] * 10,
            "inc": [np.nan] * 5 + list(range(1, 8)) + list(range(1, 13)) + [np.nan] * 10,
        }
    )
    theirs = assert_parity(
        session,
        lambda s: s.pivot_table(df, values="inc", index="a", aggfunc="count"),
        check_table(df, "a", values="inc", aggfunc="count", conventions="acro"),
    )
    assert theirs["threshold"] == {(0, 0), (2, 0)}
    assert theirs["zero"] == {(2, 0)}


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_random_tables_parity(session: Any, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 400
    df = pd.DataFrame(
        {
            "a": rng.choice(list("ABCDEFGH"), n, p=[0.3, 0.2, 0.15, 0.12, 0.1, 0.08, 0.04, 0.01]),
            "b": rng.choice(list("xyzw"), n, p=[0.5, 0.3, 0.15, 0.05]),
            "inc": np.round(rng.lognormal(2, 1.5, n), 1),
        }
    )
    df.loc[rng.random(n) < 0.1, "inc"] = np.nan
    df.loc[rng.random(n) < 0.05, "inc"] = 0.0
    results = [
        assert_parity(
            session,
            lambda s: s.crosstab(df.a, df.b, values=df.inc, aggfunc="mean"),
            check_table(df, "a", "b", values="inc", aggfunc="mean", conventions="acro"),
        ),
        assert_parity(
            session, lambda s: s.crosstab(df.a, df.b), check_table(df, "a", "b", conventions="acro")
        ),
    ]
    assert results[0]["threshold"]  # the rare levels make small cells


def test_negative_value_sends_dominance_to_review(session: Any, tricky: pd.DataFrame) -> None:
    df = tricky.copy()
    df.loc[df.index[(df.a == "B") & (df.b == "r")][0], "inc"] = -5.0
    table, record = run_acro(
        session, lambda s: s.crosstab(df.a, df.b, values=df.inc, aggfunc="mean")
    )
    ours, ours_record = our_cells(
        check_table(df, "a", "b", values="inc", aggfunc="mean", conventions="acro"), table
    )
    theirs = acro_cells(record)
    assert ours["threshold"] == theirs["threshold"]
    for rule in ("nk", "p_percent"):
        assert record.fair["check_status"][CHECKS[rule]] == "review"
        counts = ours_record["rules"][rule]
        # spec §12.1: no cell gets a dominance verdict, so all are review (never pass) ...
        assert counts == counts | {"fail": 0, "review": table.size}
        # ... and ACRO marks the cell that holds the negative value, which is ours (B, r)
        negatives = {
            (_position(table.index, c["index"]), _position(table.columns, c["columns"]))
            for c in ours_record["cells"]
            if c["evidence"]["n_negative"] > 0
        }
        assert theirs[rule] == negatives == {(1, 2)}
    assert ours_record["status"] == record.status == "fail"


# ----- spec §12.5, rebuilt from generated data ---------------------------------------------------
YEARS = list(range(2010, 2016))
GRANT_TYPES = ["G", "N", "R", "R/G"]
PER_YEAR = {"G": 15, "N": 59, "R": 71, "R/G": 8}


@pytest.fixture(scope="module")
def grants() -> pd.DataFrame:
    """918 rows: every year holds G 15, N 59, R 71, R/G 8 (A1). ``inc_grants`` is built so
    that (2010, R/G) has 8 rows, 4 values, NK ratio 0.9608 and p ratio 0.0498, and (2010, N)
    holds only zeros and NaN (A4). ``inc_mode`` has one clear mode per cell (A7)."""
    rng = np.random.default_rng(2024)
    parts = []
    for year in YEARS:
        for grant, count in PER_YEAR.items():
            values = np.round(rng.lognormal(10, 0.3, count))
            if (year, grant) == (2010, "R/G"):
                values = np.r_[787_150.0, 173_650.0, 20_000.0, 19_200.0, [np.nan] * 4]
            elif (year, grant) == (2010, "N"):
                values = np.where(np.arange(count) % 6 == 0, np.nan, 0.0)
            mode = 913_000.0 if (year, grant) == (2010, "R/G") else float(rng.integers(1, 9) * 1000)
            modes = np.r_[[mode] * 3, rng.permutation(count - 3) + 1.0]
            parts.append(
                pd.DataFrame(
                    {"year": year, "grant_type": grant, "inc_grants": values, "inc_mode": modes}
                )
            )
    return pd.concat(parts, ignore_index=True).sample(frac=1.0, random_state=1)


def test_a1_a2_count_crosstab_with_margins(session: Any, grants: pd.DataFrame) -> None:
    df = grants
    result = check_table(df, "year", "grant_type", margins=True, conventions="acro")
    frame = result.to_frame()
    assert frame.loc[2010].tolist() == [15, 59, 71, 8, 153]
    assert frame.loc["All"].tolist() == [90, 354, 426, 48, 918]
    assert frame.equals(pd.crosstab(df.year, df.grant_type, margins=True))
    theirs = assert_parity(
        session, lambda s: s.crosstab(df.year, df.grant_type, margins=True), result
    )
    assert theirs["threshold"] == {(row, 3) for row in range(6)}
    assert result.status.label == "fail"


def test_a4_mean_dominance(session: Any, grants: pd.DataFrame) -> None:
    df = grants
    result = check_table(
        df, "year", "grant_type", values="inc_grants", aggfunc="mean", conventions="acro"
    )
    theirs = assert_parity(
        session,
        lambda s: s.crosstab(df.year, df.grant_type, values=df.inc_grants, aggfunc="mean"),
        result,
    )
    assert theirs["nk"] == {(0, 3)}
    assert theirs["p_percent"] == {(0, 1), (0, 3)}
    assert theirs["threshold"] == {(row, 3) for row in range(6)}
    cells = {(c["index"][0], c["columns"][0]): c for c in result.to_dict()["cells"]}
    assert cells[2010, "R/G"]["checks"]["nk"]["ratio_2,90"] == pytest.approx(0.9608, abs=1e-4)
    assert cells[2010, "R/G"]["checks"]["p_percent"]["ratio"] == pytest.approx(0.0498, abs=1e-4)
    assert cells[2010, "R/G"]["evidence"]["n_rows"] == 8
    assert cells[2010, "N"]["checks"]["p_percent"]["ratio"] == 0


def test_a7_mode_has_no_threshold(session: Any, grants: pd.DataFrame) -> None:
    df = grants
    result = check_table(
        df, "year", "grant_type", values="inc_mode", aggfunc="mode", conventions="acro"
    )
    theirs = assert_parity(
        session,
        lambda s: s.crosstab(df.year, df.grant_type, values=df.inc_mode, aggfunc="mode"),
        result,
    )
    assert "threshold" not in theirs and theirs["zero"] == set()
    assert result.status.label == "pass"  # the R/G cells hold 8 rows and still pass
    assert result.to_frame().loc[2010, "R/G"] == 913_000


def test_a15_zero_cells_fail_twice(session: Any) -> None:
    counts = {"Dead": [18, 0, 282, 0], "Alive": [72, 354, 144, 48]}
    rows = [
        (survivor, grant)
        for survivor, line in counts.items()
        for grant, n in zip(GRANT_TYPES, line, strict=True)
        for _ in range(n)
    ]
    df = pd.DataFrame(rows, columns=["survivor", "grant_type"])
    df["survivor"] = pd.Categorical(df.survivor, categories=["Dead", "Alive"])
    result = check_table(df, "survivor", "grant_type", conventions="acro")
    theirs = assert_parity(session, lambda s: s.crosstab(df.survivor, df.grant_type), result)
    assert theirs["zero"] == theirs["threshold"] == {(0, 1), (0, 3)}
    assert result.to_frame().loc["Dead"].tolist() == [18, 0, 282, 0]
