"""Plots are drawn only from checked, protected numbers, and recorded with their table."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from enclave.analysis import AnalysisError, CheckedPlot, Session
from output_checker.status import Status

EDGES = [0, 10_000, 20_000, 40_000, 80_000, 200_000]  # the first bin holds 2 charities


def _is_png(data: bytes) -> bool:
    image = Image.open(io.BytesIO(data))
    return image.format == "PNG" and image.size[0] > 100


def test_histogram_withholds_small_bins(session: Session, charities: pd.DataFrame) -> None:
    plot = session.hist(charities, "total_costs", bins=EDGES)
    assert isinstance(plot, CheckedPlot) and _is_png(plot._repr_png_())
    counts = pd.cut(charities.total_costs, EDGES,
                    right=False).value_counts(sort=False).to_numpy()  # fmt: skip
    small = (counts > 0) & (counts < 10)
    assert small.any()  # the data have a small tail bin
    shown = plot.table["count"]
    assert shown[small].isna().all()  # withheld from what the researcher sees
    assert (shown[~small].to_numpy() == counts[~small]).all()
    output = session.outputs.get("output_0")
    assert output.status is Status.FAIL  # a failing bin is not released: re-bin it
    table_file, png_file = output.files
    assert png_file.data == plot.png
    assert png_file.record is not None
    assert png_file.record["output"]["sha256"] == hashlib.sha256(plot.png).hexdigest()
    assert png_file.record["output"]["table_sha256"] == table_file.sha256


def test_safe_histogram_passes(session: Session, charities: pd.DataFrame) -> None:
    session.hist(charities, "total_costs", bins=[0, 20_000, 40_000, 80_000, 200_000])
    assert session.outputs.get("output_0").status is Status.PASS


def test_bins_from_the_data_extremes_fail(session: Session, charities: pd.DataFrame) -> None:
    session.hist(charities, "total_costs", bins=10)
    output = session.outputs.get("output_0")
    assert output.status is Status.FAIL
    assert "bin edges derived from the data" in output.summary


def test_bar_chart_draws_only_protected_counts(session: Session, charities: pd.DataFrame) -> None:
    small = charities[charities.year.isin([2010, 2011])]
    plot = session.bar(small, "grant_type", by="year")
    assert plot.table.loc["R/G"].isna().all()  # 8 charities a year: suppressed
    assert plot.table.loc["G"].tolist() == [15, 15]
    record = session.outputs.get("output_0").files[1].record
    assert record is not None and record["output"]["format"] == "png"


def test_survival_plot_is_drawn_from_the_protected_table(
    session: Session, cohort: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    persons, _ = cohort
    table = session.surv_func(persons.first_offence_year, persons.offended, group=persons.group)
    assert (table.groupby("group")["n_events"].sum() >= 0).all()
    plot = session.surv_func(persons.first_offence_year, persons.offended, "plot",
                             group=persons.group)  # fmt: skip
    assert isinstance(plot, CheckedPlot)
    pd.testing.assert_frame_equal(plot.table, table)
    assert session.outputs.get("output_1").files[1].extension == "png"


def test_plot_input_errors(session: Session, charities: pd.DataFrame) -> None:
    with pytest.raises(AnalysisError, match="must be numeric"):
        session.hist(charities, "grant_type", bins=[0, 1])
    with pytest.raises(AnalysisError, match="strictly increasing"):
        session.hist(charities, "total_costs", bins=[5, 1])
    with pytest.raises(AnalysisError, match="by_val is not supported"):
        session.hist(charities, "total_costs", bins=[0, 1], by_val="year")
    with pytest.raises(AnalysisError, match="not supported"):
        session.surv_func(charities.total_costs, charities.year > 2012,
                          freq_weights=np.ones(len(charities)))  # fmt: skip
    with pytest.raises(AnalysisError, match="'table' or 'plot'"):
        session.surv_func(charities.total_costs, (charities.year > 2012).astype(int), "pie")
    assert len(session.outputs) == 0
