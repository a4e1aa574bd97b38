"""Secondary suppression wired into check_table, the CLI, and the tabulated-table commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from enclave.synth.microdata import generate
from output_checker import Status, check_table
from output_checker.cli import main
from output_checker.manifest import validate
from output_checker.protect import model_of
from output_checker.protection import audit


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return generate(3000, seed=2)


def test_protected_count_table_keeps_true_margins_and_hides_every_unsafe_cell(
    cohort: pd.DataFrame,
) -> None:
    result = check_table(cohort, "cat_a", "cat_b", margins=True, protect=True)
    assert result.status == Status.PASS
    table = result.to_frame()
    truth = pd.crosstab(cohort["cat_a"], cohort["cat_b"], margins=True)
    # margins are never altered: the published totals are the true totals (unlike ACRO)
    assert (table.loc["All"].to_numpy() == truth.loc["All"].to_numpy()).all()
    assert (table["All"].to_numpy() == truth["All"].to_numpy()).all()
    suppressed = result.suppressed
    assert (suppressed >= result.primary).all() and suppressed.sum() > result.primary.sum()
    published = table.to_numpy().ravel()
    assert pd.isna(published[suppressed]).all()
    assert (published[~suppressed] == truth.to_numpy().ravel()[~suppressed]).all()
    record = result.to_dict()
    validate(record)
    for cell in record["cells"]:
        if cell["suppressed"]:
            lo, hi = cell["interval"]
            assert lo <= cell["value"] <= hi and hi - lo >= 1  # never recovered by subtraction
        else:
            assert cell["interval"] is None
    # an independent audit of the released pattern agrees with the one shipped
    values = result.table.value[result.shown]
    again = audit(model_of(result.table), values, suppressed)
    assert (again.hi - again.lo > 0.5).all()


def test_mean_table_is_protected_through_its_sum_table(cohort: pd.DataFrame) -> None:
    result = check_table(
        cohort,
        "cat_a",
        "cat_b",
        values="income",
        aggfunc="mean",
        entity="entity_id",
        margins=True,
        protect=True,
    )
    assert result.status == Status.PASS
    assert result.protection is not None and result.protection.scale == "sum"
    sums = result.table.evidence.weighted_value_sum[result.shown]
    level = np.maximum(result.protection_level, 1.0)
    for pos in np.flatnonzero(result.primary):
        assert result.protection.hi[pos] >= sums[pos] + level[pos] - 1e-6
        assert result.protection.lo[pos] <= sums[pos] - level[pos] + 1e-6


def test_non_additive_statistics_suppress_failing_cells_alone(cohort: pd.DataFrame) -> None:
    result = check_table(cohort, "cat_a", values="income", aggfunc="median", protect=True)
    assert (result.suppressed == result.primary).all() and result.primary.any()
    assert result.status == Status.PASS
    assert all(c["interval"] is None for c in result.to_dict()["cells"])


def test_cli_check_table_protect(cohort: pd.DataFrame, tmp_path: Path) -> None:
    data = tmp_path / "cohort.parquet"
    cohort.to_parquet(data)
    out = tmp_path / "out.json"
    code = main(["check-table", str(data), "--index", "cat_a", "--columns", "cat_b",
                 "--margins", "--protect", "--json", str(out)])  # fmt: skip
    record = json.loads(out.read_text())
    assert code == 0 and record["status"] == "pass"
    assert record["suppression"]["status"] == "pass"
    assert any(c["suppressed"] and not c["primary"] for c in record["cells"])


def _wide(path: Path, rows: dict[str, list[int]], columns: list[str]) -> Path:
    pd.DataFrame(rows, index=columns).T.to_csv(path)
    return path


S01 = {
    "R1": [20, 50, 10, 80],
    "R2": [8, 19, 22, 49],
    "R3": [17, 32, 4, 53],
    "All": [45, 101, 36, 182],
}
COLS = ["C1", "C2", "C3", "All"]


def test_cli_protect_reproduces_s01(tmp_path: Path) -> None:
    table = _wide(tmp_path / "t.csv", S01, COLS)
    mask = {r: [0, 0, 0, 0] for r in S01}
    mask["R2"][0] = mask["R3"][2] = 1
    primary = _wide(tmp_path / "p.csv", mask, COLS)
    out = tmp_path / "o.json"
    assert main(["protect", str(table), "--primary", str(primary), "--json", str(out)]) == 0
    cells = json.loads(out.read_text())["cells"]
    got = {(c["index"][0], c["columns"][0]): c["interval"] for c in cells if c["suppressed"]}
    assert got == {
        ("R2", "C1"): [4, 25], ("R2", "C3"): [5, 26], ("R3", "C1"): [0, 21], ("R3", "C3"): [0, 21],
    }  # fmt: skip


def test_cli_protect_pair_threshold_guards_the_sum_of_two_small_cells(tmp_path: Path) -> None:
    rows = {"R1": [3, 4, 50, 57], "R2": [20, 30, 40, 90], "R3": [25, 35, 45, 105]}
    rows["All"] = [48, 69, 135, 252]
    table = _wide(tmp_path / "t.csv", rows, COLS)
    mask = {r: [0, 0, 0, 0] for r in rows}
    mask["R1"][0] = mask["R1"][1] = 1
    primary = _wide(tmp_path / "p.csv", mask, COLS)
    for extra, guarded in (([], False), (["--pair-threshold", "10"], True)):
        out = tmp_path / "o.json"
        argv = ["protect", str(table), "--primary", str(primary), "--json", str(out), *extra]
        assert main(argv) == 0
        record = json.loads(out.read_text())
        row_one = [c["suppressed"] for c in record["cells"] if c["index"] == ["R1"]]
        # without the check only the two small cells of R1 are hidden: R1's total minus C3
        # gives their sum (7 people); with it, a third cell of R1 is suppressed too
        assert (sum(row_one) >= 3) is guarded
        sums = record["suppression"]["sums"]
        assert [g["protected"] for g in sums] == ([True] if guarded else [])


def test_cli_audit_catches_a_lone_suppression(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = _wide(tmp_path / "t.csv", S01, COLS)
    mask = {r: [0, 0, 0, 0] for r in S01}
    mask["R2"][0] = 1  # the row total gives it away
    suppressed = _wide(tmp_path / "s.csv", mask, COLS)
    out = tmp_path / "a.json"
    assert main(["audit", str(table), "--suppressed", str(suppressed), "--json", str(out)]) == 1
    assert "disclosed exactly" in capsys.readouterr().out
    [cell] = [c for c in json.loads(out.read_text())["cells"] if c["suppressed"]]
    assert cell["interval"] == [8, 8]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ({"R1": [1, 2, 3], "All": [1, 2, 4]}, "not additive"),
        ({"R1": [1, "x", 3], "All": [1, 2, 3]}, "must be a number"),
    ],
)
def test_cli_protect_bad_tables_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rows: dict[str, list[object]], message: str
) -> None:
    table = tmp_path / "t.csv"
    pd.DataFrame(rows, index=["C1", "C2", "All"]).T.to_csv(table)
    primary = tmp_path / "p.csv"
    pd.DataFrame({"R1": [1, 0, 0], "All": [0, 0, 0]}, index=["C1", "C2", "All"]).T.to_csv(primary)
    out = tmp_path / "o.json"
    assert main(["protect", str(table), "--primary", str(primary), "--json", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_hierarchical_subtotals_are_protected_too() -> None:
    cohort = generate(400, seed=5, n_levels=3)
    result = check_table(cohort, ["cat_a", "cat_b"], "cat_c", hierarchical=True, protect=True)
    protection = result.protection
    assert protection is not None and protection.result is not None
    assert protection.status == Status.PASS and protection.result.protected.all()
    model = model_of(result.table)
    # one relation per subtotal (3 regions and the grand total) and column, and one per row
    assert model.constraints().shape[0] == 4 * 4 + len(model.codes[0])
    table = result.to_frame()
    subtotal = cohort[cohort["cat_a"] == "a00"].groupby("cat_c", observed=False).size()
    assert (table.loc[("a00", "All")].drop("All").to_numpy() == subtotal.to_numpy()).all()


def test_protection_parameters(cohort: pd.DataFrame) -> None:
    from output_checker import Parameters

    plain = check_table(cohort, "cat_a", "cat_b", margins=True, protect=True)
    ranged = check_table(
        cohort, "cat_a", "cat_b", margins=True, protect=True,
        parameters=Parameters(frequency_range=50.0),
    )  # fmt: skip
    level = ranged.protection_level[ranged.primary]
    values = ranged.table.value[ranged.shown][ranged.primary]
    assert np.allclose(level, np.maximum(1.0, 0.5 * values))
    assert ranged.protection is not None and ranged.protection.status == Status.PASS
    assert ranged.suppressed.sum() >= plain.suppressed.sum()
    unity = check_table(
        cohort, "cat_a", "cat_b", margins=True, protect=True,
        parameters=Parameters(suppression_costs="unity"),
    )  # fmt: skip
    assert unity.protection is not None and unity.protection.status == Status.PASS
    assert unity.suppressed.sum() <= plain.suppressed.sum()  # fewest cells, not least value
    with pytest.raises(Exception, match="suppression_costs"):
        Parameters(suppression_costs="random")  # type: ignore[arg-type]


def test_singleton_aware_audit_adds_attacker_scenarios() -> None:
    from output_checker import Parameters

    rng = np.random.default_rng(4)
    sizes = {("r1", "c1"): 1, ("r1", "c2"): 3}  # a singleton beside another unsafe cell
    rows = [
        (r, c, float(v))
        for r in ("r1", "r2", "r3")
        for c in ("c1", "c2", "c3")
        for v in rng.integers(10, 100, sizes.get((r, c), 15))
    ]
    cohort = pd.DataFrame(rows, columns=["cat_a", "cat_b", "income"])

    result = check_table(
        cohort, "cat_a", "cat_b", values="income", aggfunc="sum", margins=True, protect=True,
        parameters=Parameters(singleton_audit=True),
    )  # fmt: skip
    protection = result.protection
    assert protection is not None and protection.result is not None
    assert protection.result.scenarios  # singletons share relations with primaries here
    assert all(s.protected for s in protection.result.scenarios)
