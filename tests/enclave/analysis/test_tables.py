"""Tables: each call returns the protected table, prints which rules fired, and records the
output with its evidence (cases modelled on ACRO's charity data, spec §12.5)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from enclave.analysis import AnalysisError, Session
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
