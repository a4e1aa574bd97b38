"""Tables: each call returns the protected table, prints which rules fired, and records the
output with its evidence (cases modelled on ACRO's charity data, spec §12.5)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from enclave.analysis import AnalysisError, Session
from output_checker import manifest
from output_checker.status import Status
from tests.enclave.analysis.conftest import Echo


def test_count_crosstab_with_margins_keeps_the_true_totals(
    session: Session, charities: pd.DataFrame, echo: Echo
) -> None:
    table = session.crosstab(charities.year, charities.grant_type, margins=True)
    # every R/G cell (8 charities) is below the threshold and withheld
    assert table["R/G"].iloc[:6].isna().all()
    # the totals are the true ones (ACRO's record deletion shows 145 and 870 here)
    assert list(table["All"].iloc[:6]) == [153] * 6
    assert table.loc["All", "All"] == 918
    assert list(table.loc["All", ["G", "N", "R", "R/G"]]) == [90, 354, 426, 48]
    # withholding R/G alone would give it away as All minus the rest: more cells go
    assert int(table.iloc[:6, :4].isna().sum().sum()) > 6
    output = session.outputs.get("output_0")
    assert output.status is Status.PASS
    record = output.files[0].record
    assert record is not None
    assert record["rules"]["threshold"]["fail"] == 6
    suppressed = [c for c in record["cells"] if c["suppressed"]]
    assert all(c["interval"] is not None for c in suppressed)
    text = echo.last
    assert "6 cells had fewer than 10 contributing units (threshold: fail)" in text
    assert "cannot be worked out from the totals" in text
    assert "what anyone can infer about suppressed cells" in text


def test_mean_table_flags_nk_and_p_percent_and_suppresses(
    session: Session, charities: pd.DataFrame, echo: Echo
) -> None:
    table = session.crosstab(
        charities.year, charities.grant_type, values=charities.inc_grants, aggfunc="mean"
    )
    record = session.outputs.get("output_0").files[0].record
    assert record is not None
    assert record["rules"]["nk"]["fail"] >= 1
    assert record["rules"]["p_percent"]["fail"] >= 1
    failing = {(c["index"][0], c["columns"][0]) for c in record["cells"] if c["primary"]}
    assert {(2011, "G"), (2012, "N")} <= failing
    assert np.isnan(table.loc[2011, "G"]) and np.isnan(table.loc[2012, "N"])
    assert "dominated by their largest one or two contributors" in echo.last
    assert "estimate the largest to within 10%" in echo.last


def test_without_suppression_the_failing_table_is_recorded_as_fail(
    session: Session, charities: pd.DataFrame
) -> None:
    session.disable_suppression()
    table = session.crosstab(charities.year, charities.grant_type)
    assert not table.isna().any().any()
    assert session.outputs.get("output_0").status is Status.FAIL


def test_pivot_table_with_two_statistics_records_one_file_each(
    session: Session, charities: pd.DataFrame
) -> None:
    table = session.pivot_table(
        charities, values="inc_grants", index="year", columns="grant_type",
        aggfunc=["mean", "median"],
    )  # fmt: skip
    assert list(table.columns.get_level_values(0).unique()) == ["mean", "median"]
    output = session.outputs.get("output_0")
    assert [f.label for f in output.files] == ["inc_grants_mean", "inc_grants_median"]
    assert [f.record["statistic"] for f in output.files if f.record] == ["mean", "median"]


def test_groupby_agg_matches_pandas_where_nothing_is_suppressed(
    session: Session, charities: pd.DataFrame
) -> None:
    table = session.groupby_agg(charities, "grant_type", "total_costs", ["mean", "std"])
    expected = charities.groupby("grant_type")["total_costs"].agg(["mean", "std"])
    pd.testing.assert_frame_equal(table.loc[["G", "N", "R"]], expected.loc[["G", "N", "R"]],
                                  check_names=False)  # fmt: skip


def test_describe_suppresses_unsafe_extremes(session: Session, charities: pd.DataFrame) -> None:
    table = session.describe(charities, ["total_costs"], by="grant_type")
    assert table[("total_costs", "max")].isna().all()  # a maximum is one charity's own value
    assert table[("total_costs", "count")].tolist() == [90, 354, 426, 48]
    assert len(session.outputs.get("output_0").files) == 8


def test_normalize_divides_protected_counts_by_true_totals(
    session: Session, charities: pd.DataFrame
) -> None:
    shares = session.crosstab(charities.year, charities.grant_type, normalize="index")
    assert shares.loc[2010, "G"] == pytest.approx(15 / 153) or np.isnan(shares.loc[2010, "G"])
    assert shares["R/G"].isna().all()


@pytest.mark.parametrize(
    ("aggfunc", "message"),
    [
        (lambda s: s.mean(), "unsupported aggregation '<lambda>'"),
        ("geometric_mean", "unsupported aggregation 'geometric_mean'"),
        (np.ptp, "unsupported aggregation 'ptp'"),
    ],
)
def test_aggregations_that_cannot_be_checked_are_refused_and_nothing_is_recorded(
    session: Session, charities: pd.DataFrame, aggfunc: object, message: str
) -> None:
    with pytest.raises(AnalysisError, match=message):
        session.crosstab(charities.year, charities.grant_type, charities.inc_grants,
                         aggfunc=aggfunc)  # fmt: skip
    with pytest.raises(AnalysisError, match="cannot check is never released"):
        session.pivot_table(charities, "inc_grants", "year", aggfunc=["mean", aggfunc])
    assert len(session.outputs) == 0


def test_bad_input_is_refused_with_one_line_and_nothing_recorded(
    session: Session, charities: pd.DataFrame
) -> None:
    empty = charities.iloc[0:0]
    cases = [
        (lambda: session.crosstab(empty.year, empty.grant_type), "the data are empty"),
        (lambda: session.pivot_table(empty, "inc_grants", "year"), "the data are empty"),
        (
            lambda: session.pivot_table(charities, "survivor", "year", aggfunc="mean"),
            "numeric",
        ),
        (lambda: session.pivot_table(charities, "nope", "year"), r"column\(s\) not in the data"),
        (lambda: session.pivot_table(charities, "inc_grants", "year", fill_value=0),
         "fill_value is refused"),
        (lambda: session.crosstab(charities.year, charities.grant_type, charities.inc_grants),
         "values and aggfunc go together"),
        (lambda: session.groupby_agg(charities, [], "inc_grants"), "at least one grouping"),
        (lambda: session.describe(charities[["year", "grant_type"]].astype(str)),
         "no numeric column"),
    ]  # fmt: skip
    for call, message in cases:
        with pytest.raises(AnalysisError, match=message) as caught:
            call()
        assert "\n" not in str(caught.value)
    assert len(session.outputs) == 0


def test_mixed_types_in_values_are_refused(session: Session, charities: pd.DataFrame) -> None:
    frame = charities.assign(inc_grants=charities.inc_grants.astype(object))
    frame.loc[0, "inc_grants"] = "n/a"
    with pytest.raises(AnalysisError, match="numeric"):
        session.pivot_table(frame, "inc_grants", "year")
    assert len(session.outputs) == 0


def test_a_rounded_crosstab_publishes_multiples_of_the_base_and_keeps_blanks(
    session: Session, echo: Echo
) -> None:
    df = session.load("charities")
    exact = session.crosstab(df.year, df.grant_type, margins=True)
    rounded = session.crosstab(df.year, df.grant_type, margins=True, round_to=10)
    assert rounded.isna().equals(exact.isna())  # suppressed cells stay missing
    assert exact.isna().any().any()
    shown = rounded.stack().dropna().astype(int)
    assert (shown % 10 == 0).all() and not (exact.stack().dropna() % 10 == 0).all()
    assert ((shown - exact.stack().dropna().astype(int)).abs() <= 5).all()
    assert rounded.loc["All", "All"] == 920  # 918, halves up to the nearest ten
    (file,) = session.outputs.get("output_1").files
    assert file.data == rounded.to_csv().encode()  # the file is the rounded table
    assert file.record is not None and file.recipe is not None
    manifest.validate(file.record)
    assert file.record["output"] == {"format": "csv", "sha256": file.sha256, "rounded_to": 10}
    assert any("rounded to base 10" in note for note in file.record["notes"])
    assert file.recipe["round"] == 10
    assert session.outputs.get("output_0").files[0].recipe["round"] is None  # type: ignore[index]
    output = session.outputs.get("output_1")
    assert output.provenance.label.endswith("rounded to base 10")
    assert "rounded to base 10" in echo.last and "round_to=10" in output.command


def test_rounded_pivot_table_and_groupby_agg(session: Session) -> None:
    df = session.load("charities")
    means = session.pivot_table(df, "inc_grants", "year", "grant_type", round_to=1000)
    values = means.stack().dropna()
    assert len(values) > 0 and (values % 1000 == 0).all()
    assert means["R/G"].isna().all()  # too few charities: suppressed, and stays so
    sums = session.groupby_agg(df, "survivor", "inc_grants", ["sum", "mean"], round_to=100)
    assert list(sums.columns) == ["sum", "mean"]
    assert (sums.stack().dropna() % 100 == 0).all()
    files = session.outputs.get("output_1").files
    assert [f.recipe["round"] for f in files if f.recipe] == [100, 100]
    assert all(f.record and f.record["output"]["sha256"] == f.sha256 for f in files)


@pytest.mark.parametrize("base", [1, 0, -10, 2.5, True, "10"])
def test_a_bad_rounding_base_is_refused_and_nothing_recorded(session: Session, base: Any) -> None:
    df = session.load("charities")
    calls: list[Callable[[], object]] = [
        lambda: session.crosstab(df.year, df.grant_type, round_to=base),
        lambda: session.pivot_table(df, "inc_grants", "year", round_to=base),
        lambda: session.groupby_agg(df, "year", "inc_grants", round_to=base),
    ]
    for call in calls:
        with pytest.raises(AnalysisError, match="round_to: a rounding base must be") as caught:
            call()
        assert "\n" not in str(caught.value)
    assert len(session.outputs) == 0


def test_rounding_a_table_without_a_recipe_is_refused(
    session: Session, charities: pd.DataFrame
) -> None:
    """Without a recipe the queue compares the file with the record's exact cells, so a
    rounded file could never be vouched for: refused before anything is recorded."""
    calls: list[Callable[[], object]] = [
        lambda: session.crosstab(charities.year, charities.grant_type, round_to=10),
        lambda: session.pivot_table(charities, "inc_grants", "year", round_to=10),
        lambda: session.groupby_agg(charities, "year", "inc_grants", round_to=10),
    ]
    for call in calls:
        with pytest.raises(AnalysisError, match="round_to needs a table built from a registered"):
            call()
    assert len(session.outputs) == 0
