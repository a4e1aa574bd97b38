"""ACRO's silent gaps (issue 6), each with a test that ours catches it and, marked ``parity``,
one showing what ACRO 1.0.2 does with the same input."""

from __future__ import annotations

import warnings
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest

from enclave.analysis import Session
from output_checker.status import Status


def _record(session: Session, name: str = "output_0") -> dict[str, Any]:
    record = session.outputs.get(name).files[0].record
    assert record is not None
    return record


def _acro_session(acro: ModuleType) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return acro.ACRO(suppress=False)


def _acro_last(session: Any, call: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        call(session)
    return session.results.get_index(-1)


def with_negative(charities: pd.DataFrame) -> pd.DataFrame:
    """One negative grant in (2015, R/G), far from the dominated cell (2011, G)."""
    frame = charities.copy()
    frame.loc[frame.index[-1], "inc_grants"] = -5.0
    return frame


def with_lonely_region(charities: pd.DataFrame) -> pd.DataFrame:
    """A region holding one charity: its dummy's coefficient is that charity's own residual."""
    frame = charities.copy()
    position = np.arange(len(frame))
    frame["region"] = np.where(position % 2 == 0, "north", "south")
    frame.loc[frame.index[5], "region"] = "islands"
    return frame


# ----- numpy function aggregators --------------------------------------------------------------
def test_numpy_aggregator_is_checked_like_its_name(
    session: Session, charities: pd.DataFrame
) -> None:
    session.crosstab(charities.year, charities.grant_type, charities.inc_grants, aggfunc=np.mean)
    record = _record(session)
    assert record["statistic"] == "mean"
    assert record["rules"]["threshold"]["fail"] == 6
    assert record["rules"]["nk"]["fail"] >= 1
    assert record["suppression"]["suppressed"] >= 8


@pytest.mark.parity
def test_parity_acro_lets_numpy_aggregators_through_unchecked(
    acro: ModuleType, charities: pd.DataFrame
) -> None:
    df = charities
    record = _acro_last(
        _acro_session(acro),
        lambda s: s.crosstab(df.year, df.grant_type, values=df.inc_grants, aggfunc=np.mean),
    )
    assert record.status == "pass"
    assert record.sdc == {} or not any(record.sdc.get("summary", {}).values())


# ----- a negative value elsewhere ----------------------------------------------------------------
def test_one_negative_does_not_switch_off_dominance_elsewhere(
    session: Session, charities: pd.DataFrame
) -> None:
    df = with_negative(charities)
    session.crosstab(df.year, df.grant_type, df.inc_grants, aggfunc="mean")
    cells = {(c["index"][0], c["columns"][0]): c for c in _record(session)["cells"]}
    assert cells[(2011, "G")]["checks"]["nk"]["status"] == "fail"
    assert cells[(2012, "N")]["checks"]["p_percent"]["status"] == "fail"
    assert cells[(2015, "R/G")]["evidence"]["n_negative"] == 1


@pytest.mark.parity
def test_parity_acro_one_negative_disables_dominance_for_the_whole_table(
    acro: ModuleType, charities: pd.DataFrame
) -> None:
    df = with_negative(charities)
    session = _acro_session(acro)
    clean = _acro_last(
        session,
        lambda s: s.crosstab(
            charities.year, charities.grant_type, values=charities.inc_grants, aggfunc="mean"
        ),
    )
    negative = _acro_last(session, lambda s: s.crosstab(
        df.year, df.grant_type, values=df.inc_grants, aggfunc="mean"))  # fmt: skip
    assert [1, 0] in clean.sdc["cells"]["NKCheck"]  # (2011, G) found without the negative
    assert [1, 0] not in negative.sdc["cells"]["NKCheck"]  # and lost with it
    assert [2, 1] not in negative.sdc["cells"]["PPercentCheck"]
    assert "not defined when negative" in negative.summary


# ----- mode tables -----------------------------------------------------------------------------
def test_mode_tables_get_the_threshold(session: Session, charities: pd.DataFrame) -> None:
    session.disable_suppression()
    session.crosstab(charities.year, charities.grant_type, charities.inc_grants, aggfunc="mode")
    record = _record(session)
    assert record["output_type"] == "mode"
    assert record["rules"]["threshold"]["fail"] == 6  # the R/G cells of 8 charities
    assert record["status"] == "fail"


@pytest.mark.parity
def test_parity_acro_runs_no_threshold_on_mode_tables(
    acro: ModuleType, charities: pd.DataFrame
) -> None:
    df = charities
    record = _acro_last(
        _acro_session(acro),
        lambda s: s.crosstab(df.year, df.grant_type, values=df.inc_grants, aggfunc="mode"),
    )
    assert record.status == "pass"
    assert "MinimumThresholdCheck" not in record.sdc["summary"]


# ----- a regression dummy for one person ---------------------------------------------------------
@pytest.mark.parametrize("api", ["formula", "array"])
def test_one_person_dummy_fails(session: Session, charities: pd.DataFrame, api: str) -> None:
    df = with_lonely_region(charities)
    if api == "formula":
        session.ols("inc_activity ~ inc_grants + C(region)", data=df)
    else:
        dummies = pd.get_dummies(df["region"], prefix="region", dtype=float)
        exog = pd.concat([df[["inc_grants"]], dummies[["region_islands", "region_north"]]], axis=1)
        session.ols(df.inc_activity, session_add_constant(exog))
    record = _record(session)
    assert record["checks"]["dof"]["status"] == "pass"
    level = record["checks"]["level_count"]
    assert level["status"] == "fail"
    assert any(f["n"] == 1 for f in level["failing"])
    assert session.outputs.get("output_0").status is Status.FAIL


def session_add_constant(frame: pd.DataFrame) -> pd.DataFrame:
    import enclave.analysis as ea

    return ea.add_constant(frame)  # type: ignore[no-any-return]


@pytest.mark.parity
def test_parity_acro_passes_a_one_person_dummy(acro: ModuleType, charities: pd.DataFrame) -> None:
    df = with_lonely_region(charities)
    record = _acro_last(
        _acro_session(acro), lambda s: s.olsr("inc_activity ~ inc_grants + C(region)", data=df)
    )
    assert record.status == "pass"


# ----- a lambda ----------------------------------------------------------------------------------
@pytest.mark.parity
def test_parity_acro_records_a_lambda_as_pass(acro: ModuleType, charities: pd.DataFrame) -> None:
    df = charities
    record = _acro_last(
        _acro_session(acro),
        lambda s: s.crosstab(df.year, df.grant_type, values=df.inc_grants,
                             aggfunc=lambda x: x.mean()),
    )  # fmt: skip
    assert record.status == "pass"  # ours refuses it: test_tables.py
