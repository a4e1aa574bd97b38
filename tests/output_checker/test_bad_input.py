"""Bad input: one clear line naming the problem, from the library and from the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from output_checker import InputError, ParameterError, Parameters, check_table
from output_checker.cli import main


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "a": rng.choice(["x", "y"], 200),
            "b": rng.choice(["p", "q"], 200),
            "income": rng.lognormal(8, 1, 200),
            "name": rng.choice(["ann", "bob"], 200),
            "blank": np.nan,
        }
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"index": "nope"}, "column(s) not in the data: 'nope'"),
        (
            {"index": "a", "values": "name", "aggfunc": "mean"},
            "value variable 'name' is not numeric",
        ),
        (
            {"index": "a", "values": "income", "aggfunc": "average"},
            "unsupported aggregation 'average'",
        ),
        (
            {"index": "a", "values": "income", "aggfunc": lambda s: s.mean()},
            "unsupported aggregation '<lambda>'",
        ),
        ({"index": "a", "values": "income"}, "values given without an aggregation"),
        ({"index": "a", "aggfunc": "mean"}, "needs a values variable"),
        ({"index": "a", "values": "blank", "aggfunc": "mean"}, "has no non-missing values"),
        (
            {"index": "a", "values": "income", "aggfunc": "quantile(1.5)"},
            "strictly between 0 and 1",
        ),
        (
            {"index": "a", "values": "income", "aggfunc": "median", "weights": "income"},
            "weights are supported",
        ),
        ({"index": ["a", "a"]}, "appears more than once"),
    ],
)
def test_bad_requests_raise_one_line(
    frame: pd.DataFrame, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(InputError) as info:
        check_table(frame, **kwargs)  # type: ignore[arg-type]
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_empty_data(frame: pd.DataFrame) -> None:
    with pytest.raises(InputError, match="no rows"):
        check_table(frame.iloc[:0], "a")


def test_cell_limit(frame: pd.DataFrame) -> None:
    with pytest.raises(InputError, match="4 cells, over the limit of 3"):
        check_table(frame, "a", "b", parameters=Parameters(max_cells=3))


def test_known_callables_are_checked_like_their_names(frame: pd.DataFrame) -> None:
    by_callable = check_table(frame, "a", "b", values="income", aggfunc=np.mean).to_dict()
    by_name = check_table(frame, "a", "b", values="income", aggfunc="mean").to_dict()
    assert by_callable["statistic"] == "mean"
    assert [c["value"] for c in by_callable["cells"]] == [c["value"] for c in by_name["cells"]]
    assert by_callable["rules"].keys() == by_name["rules"].keys() >= {"nk", "p_percent"}


def test_projects_may_only_tighten() -> None:
    defaults = Parameters()
    assert defaults.tightened(threshold=20).threshold == 20
    with pytest.raises(ParameterError, match="'threshold' may only be tightened"):
        defaults.tightened(threshold=5)
    with pytest.raises(ParameterError, match="'nk_rules' may only be tightened"):
        defaults.tightened(nk_rules=[(1, 60)])
    assert defaults.tightened(nk_rules=[(1, 40), (2, 85), (3, 90)]).nk_depth == 3
    with pytest.raises(ParameterError, match="'zeros'"):
        Parameters(zeros="fail").tightened(zeros="review")
    with pytest.raises(ParameterError, match="unknown parameter"):
        defaults.tightened(threshhold=20)
    with pytest.raises(ParameterError, match="'p_percent' must be"):
        Parameters(p_percent=150)


def _csv(frame: pd.DataFrame, tmp_path: Path) -> Path:
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--index", "nope"], "column(s) not in data.csv: 'nope'"),
        (["--index", "a", "--values", "name", "--agg", "mean"], "is not numeric"),
        (["--index", "a", "--values", "income", "--agg", "mode(2)"], "unsupported aggregation"),
        (["--index", "a", "--values", "blank", "--agg", "mean"], "no non-missing values"),
    ],
)
def test_cli_bad_input_exits_2_without_output(
    frame: pd.DataFrame,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    out = tmp_path / "out.json"
    code = main(["check-table", str(_csv(frame, tmp_path)), *args, "--json", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_cli_missing_file_and_unknown_type(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "o.json")
    assert main(["check-table", str(tmp_path / "absent.csv"), "--index", "a", "--json", out]) == 2
    assert "data file not found" in capsys.readouterr().err
    (tmp_path / "data.xlsx").write_text("x")
    assert main(["check-table", str(tmp_path / "data.xlsx"), "--index", "a", "--json", out]) == 2
    assert "unsupported data file type" in capsys.readouterr().err


def test_cli_loosening_parameters_is_refused(
    frame: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loose = tmp_path / "params.json"
    loose.write_text('{"threshold": 3}')
    code = main(
        [
            "check-table",
            str(_csv(frame, tmp_path)),
            "--index",
            "a",
            "--parameters",
            str(loose),
            "--json",
            str(tmp_path / "o.json"),
        ]
    )
    assert code == 2
    assert "may only be tightened" in capsys.readouterr().err


def test_cli_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["check-table", "data.csv", "--json", "x.json"])
    assert info.value.code == 2
    assert "--index" in capsys.readouterr().err
