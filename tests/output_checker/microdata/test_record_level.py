"""Record-level outputs held to the project's microdata policy, in the session's checker and
again by the queue on the trusted side (``recheck_output``)."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from output_checker.errors import InputError, ParameterError
from output_checker.files import check_file
from output_checker.microdata.methods.suppression import local_suppression
from output_checker.parameters import Parameters
from output_checker.queue.recheck import recheck_output
from output_checker.queue.workflow import CheckStatus
from output_checker.record_level import check_records
from output_checker.status import Status

KEYS = ["urbrur", "water", "sex", "age"]


@pytest.fixture(scope="module")
def testdata(sdcmicro_dir: Path) -> pd.DataFrame:
    return pd.read_csv(sdcmicro_dir / "testdata.csv")


def _not_k_anonymous(frame: pd.DataFrame, keys: list[str], k: int) -> int:
    """Records in a combination shared by fewer than k records (testdata has no missing
    keys, so plain group sizes are sdcMicro's fk)."""
    sizes = frame.groupby(keys)[keys[0]].transform("size")
    return int((sizes < k).sum())


def test_without_declared_quasi_identifiers_records_are_refused(testdata: pd.DataFrame) -> None:
    status, reason = check_records(testdata, Parameters())
    assert status is Status.FAIL and "declares no quasi-identifiers" in reason


def test_records_that_are_not_k_anonymous_are_refused_with_the_count(
    testdata: pd.DataFrame,
) -> None:
    status, reason = check_records(testdata, Parameters(quasi_identifiers=tuple(KEYS)))
    expected = _not_k_anonymous(testdata, KEYS, 5)
    assert expected > 0
    assert status is Status.FAIL
    assert f"{expected} record(s) violate 5-anonymity" in reason and "urbrur" in reason


def test_after_local_suppression_the_records_go_to_review(testdata: pd.DataFrame) -> None:
    treated = testdata.copy()
    treated[KEYS] = local_suppression(testdata[KEYS], k=5).keys
    status, reason = check_records(treated, Parameters(quasi_identifiers=tuple(KEYS)))
    assert status is Status.REVIEW and "5-anonymous" in reason
    # a stricter project is still refused on the same file
    strict = Parameters(quasi_identifiers=tuple(KEYS), microdata_k=50)
    assert check_records(treated, strict)[0] is Status.FAIL


def test_the_reason_names_variables_and_counts_never_values(testdata: pd.DataFrame) -> None:
    rare = testdata.groupby("age").size().idxmin()
    _, reason = check_records(testdata, Parameters(quasi_identifiers=("age",)))
    assert f" {rare} " not in f" {reason} "


def test_a_project_may_only_tighten_the_policy() -> None:
    base = Parameters(quasi_identifiers=("age",))
    assert base.tightened(microdata_k=10).microdata_k == 10
    assert base.tightened(quasi_identifiers=["age", "sex"]).quasi_identifiers == ("age", "sex")
    for loosening in (
        {"microdata_k": 3},
        {"microdata_max_global_risk": 0.01},
        {"quasi_identifiers": ["sex"]},
    ):
        with pytest.raises(ParameterError, match="may only be tightened"):
            base.tightened(**loosening)
    with pytest.raises(ParameterError, match="microdata_k"):
        Parameters(microdata_k=1)


def test_check_file_reads_the_records(tmp_path: Path, testdata: pd.DataFrame) -> None:
    path = tmp_path / "records.csv"
    testdata[KEYS].to_csv(path, index=False)
    result = check_file(path, "microdata", Parameters(quasi_identifiers=tuple(KEYS)))
    assert result.status is Status.FAIL and "violate 5-anonymity" in result.reason
    picture = tmp_path / "figure.png"
    picture.write_bytes(b"\x89PNG fake bytes")
    with pytest.raises(InputError, match="csv or parquet"):
        check_file(picture, "microdata")


@pytest.mark.parametrize("claimed", ["pass", "review"])
def test_the_queue_refuses_unsafe_records_whatever_the_session_claimed(
    tmp_path: Path, testdata: pd.DataFrame, claimed: str
) -> None:
    record = {"kind": "file", "output_type": "microdata", "status": claimed}
    params = Parameters(quasi_identifiers=tuple(KEYS))
    buffer = io.BytesIO()
    testdata[KEYS].to_parquet(buffer, index=False)
    refused = recheck_output(buffer.getvalue(), "parquet", record, None, params, tmp_path)
    assert refused.status is CheckStatus.FAIL and "violate 5-anonymity" in refused.summary
    safe = testdata[KEYS].copy()
    safe[KEYS] = local_suppression(testdata[KEYS], k=5).keys
    content = safe.to_csv(index=False).encode()
    reviewed = recheck_output(content, "csv", record, None, params, tmp_path)
    assert reviewed.status is CheckStatus.REVIEW
    garbled = recheck_output(b"\x00\x01", "parquet", record, None, params, tmp_path)
    assert garbled.status is CheckStatus.FAIL and "cannot read" in garbled.summary
