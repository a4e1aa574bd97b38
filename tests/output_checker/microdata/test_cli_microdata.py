"""``output-checker microdata-risk`` and ``output-checker anonymise``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from output_checker.cli import main
from output_checker.microdata.risk.individual import measure_risk
from tests.output_checker.microdata.test_workflow import brute_fk

EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "examples" / "microdata-recipe.toml"
KEYS5 = ["urbrur", "roof", "walls", "water", "sex"]


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def risk_json(
    data: Path, keys: list[str], extra: list[str], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> dict[str, object]:  # fmt: skip
    out = tmp_path / "risk.json"
    code, stdout, err = run(["microdata-risk", str(data), "--keys", *keys, *extra,
                             "--json", str(out)], capsys)  # fmt: skip
    assert code == 0, err
    assert len(stdout.strip().splitlines()) == 1
    document: dict[str, object] = json.loads(out.read_text())
    return document


def test_francdat_values_equal_measure_risk(
    sdcmicro_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = sdcmicro_dir / "francdat.csv"
    keys = ["Key1", "Key2", "Key3", "Key4"]
    got = risk_json(path, keys, ["--weight", "w"], tmp_path, capsys)
    data = pd.read_csv(path)
    ref = measure_risk(data[keys], data["w"].to_numpy())
    assert got["n"] == 8
    assert got["expected_reidentifications"] == ref.expected_reidentifications
    assert got["global_risk"] == ref.global_risk
    assert got["kanon_violations"] == {str(k): ref.kanon_violations(k) for k in (2, 3, 5)}
    spread = got["individual_risk"]
    assert isinstance(spread, dict)
    assert spread["max"] == ref.individual.max() and spread["min"] == ref.individual.min()
    assert spread["median"] == np.median(ref.individual)
    # man/indivRisk.Rd example output: the largest francdat risk is 0.40235948
    assert spread["max"] == pytest.approx(0.40235948, abs=5e-9)
    assert "household" not in got


def test_testdata_values_match_sdcmicro_documentation(
    sdcmicro_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = sdcmicro_dir / "testdata.csv"
    # man/measure_risk.Rd example (unweighted): 93 expected re-identifications, 2.03 %,
    # threshold printed 0.03
    unweighted = risk_json(path, KEYS5, [], tmp_path, capsys)
    assert unweighted["expected_reidentifications"] == pytest.approx(93)
    assert round(float(unweighted["global_risk_pct"]), 2) == 2.03  # type: ignore[arg-type]
    assert round(float(unweighted["threshold"]), 2) == 0.03  # type: ignore[arg-type]
    # the same example, weighted with households: 1.53 and 7.18 expected, threshold NA -> null
    weighted = risk_json(path, KEYS5, ["--weight", "sampling_weight", "--household", "ori_hid"],
                         tmp_path, capsys)  # fmt: skip
    assert round(float(weighted["expected_reidentifications"]), 2) == 1.53  # type: ignore[arg-type]
    assert weighted["threshold"] is None
    household = weighted["household"]
    assert isinstance(household, dict)
    assert round(household["expected_reidentifications"], 2) == 7.18
    data = pd.read_csv(path)
    ref = measure_risk(data[KEYS5], data["sampling_weight"].to_numpy(), data["ori_hid"])
    assert weighted["global_risk"] == ref.global_risk
    assert household["global_risk"] == ref.household_global_risk
    fk = brute_fk(data[KEYS5])
    assert weighted["kanon_violations"] == {str(k): int((fk < k).sum()) for k in (2, 3, 5)}
    assert weighted["fk"] == {
        "min": fk.min(), "q25": np.quantile(fk, 0.25), "median": np.median(fk),
        "q75": np.quantile(fk, 0.75), "q90": np.quantile(fk, 0.9), "q99": np.quantile(fk, 0.99),
        "max": fk.max(), "mean": fk.mean(),
    }  # fmt: skip


def test_risk_json_has_no_per_record_arrays(
    sdcmicro_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    got = risk_json(sdcmicro_dir / "testdata.csv", KEYS5, ["--household", "ori_hid"], tmp_path,
                    capsys)  # fmt: skip

    def lists(value: object) -> int:
        if isinstance(value, dict):
            return sum(lists(v) for k, v in value.items() if k != "keys")
        return int(isinstance(value, list))

    assert lists(got) == 0


@pytest.mark.parametrize(
    ("file", "args", "message"),
    [
        ("testdata.csv", ["--keys", "urbrur", "nokey"], "'nokey'"),
        ("testdata.csv", ["--keys", "urbrur", "--alpha", "2"], "alpha must be in [0, 1]"),
        ("testdata.csv", ["--keys", "urbrur", "--max-global-risk", "0"], "max_global_risk"),
        ("absent.csv", ["--keys", "urbrur"], "data file not found"),
        ("README.md", ["--keys", "urbrur"], "unsupported data file type"),
    ],
)
def test_risk_bad_input_exits_2_with_one_line(
    file: str, args: list[str], message: str, sdcmicro_dir: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    data = str(sdcmicro_dir / file)
    out = tmp_path / "risk.json"
    code, _, err = run(["microdata-risk", data, *args, "--json", str(out)], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("output-checker: error:")
    assert message in err
    assert not out.exists()


def test_anonymise_writes_data_and_report(
    sdcmicro_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, report = tmp_path / "out.parquet", tmp_path / "report.html"
    data = str(sdcmicro_dir / "testdata.csv")
    args = ["anonymise", data, "--recipe", str(EXAMPLE), "--out", str(out), "--report", str(report)]
    code, stdout, err = run(args, capsys)
    assert code == 0, err
    assert stdout.startswith("target met")
    treated = pd.read_parquet(out)
    original = pd.read_csv(sdcmicro_dir / "testdata.csv")
    assert list(treated.columns) == list(original.columns) and len(treated) == len(original)
    keys = ["urbrur", "roof", "walls", "water", "electcon", "relat", "sex", "age"]
    assert brute_fk(treated[keys]).min() >= 3
    assert "The target holds." in report.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.parquet", "report.html"]


def test_unreachable_target_exits_1_without_output(
    sdcmicro_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "recipe.toml"
    # sample data: no record's risk comes near 1e-9, whatever is suppressed
    recipe.write_text('[problem]\nkeys = ["urbrur", "roof", "sex"]\nweight = "sampling_weight"\n'
                      "[target]\nk = 2\nmax_global_risk = 1e-9\n")  # fmt: skip
    out, report = tmp_path / "out.parquet", tmp_path / "report.html"
    data = str(sdcmicro_dir / "testdata.csv")
    args = ["anonymise", data, "--recipe", str(recipe), "--out", str(out), "--report", str(report)]
    code, stdout, err = run(args, capsys)
    assert code == 1
    assert stdout == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("output-checker: target not met: global risk")
    assert "exceeds the target 1e-09" in err
    assert not out.exists()
    assert "The target does not hold" in report.read_text()


@pytest.mark.parametrize(
    ("recipe_text", "message"),
    [
        ('[problem]\nkeys = ["urbrur"]\n[[step]]\nmethod = "blur"\n', "unknown method 'blur'"),
        ('[problem]\nkeys = ["urbrur", "nokey"]\n', "variables not in the data: nokey"),
        ("[problem\n", "not valid TOML"),
    ],
)
def test_anonymise_bad_input_exits_2(
    recipe_text: str, message: str, sdcmicro_dir: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(recipe_text)
    out, report = tmp_path / "out.parquet", tmp_path / "report.html"
    code, _, err = run(["anonymise", str(sdcmicro_dir / "testdata.csv"), "--recipe", str(recipe),
                        "--out", str(out), "--report", str(report)], capsys)  # fmt: skip
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and message in err
    assert not out.exists() and not report.exists()


def test_missing_argument_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["anonymise", "data.csv", "--out", "x.parquet", "--report", "r.html"])
    assert info.value.code == 2
    assert "--recipe" in capsys.readouterr().err


def test_merged_category_with_a_new_name_is_written_as_text(
    sdcmicro_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(
        '[problem]\nkeys = ["urbrur", "roof", "sex"]\nweight = "sampling_weight"\n'
        "[target]\nk = 2\nmax_global_risk = 0.01\n"
        '[[step]]\nmethod = "group_and_rename"\nvariable = "roof"\n'
        'groups = [{ to = "other", from = [5, 9] }]\n'
    )
    out, report = tmp_path / "out.parquet", tmp_path / "report.html"
    data = str(sdcmicro_dir / "testdata.csv")
    args = ["anonymise", data, "--recipe", str(recipe), "--out", str(out), "--report", str(report)]
    code, _, err = run(args, capsys)
    assert code == 0, err
    roof = pd.read_parquet(out)["roof"]
    original = pd.read_csv(data)["roof"]
    assert (roof == "other").sum() == original.isin([5, 9]).sum()
    assert (roof == "4").sum() == (original == 4).sum()
