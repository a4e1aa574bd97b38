"""The differencing ledger in the queue (issue 11): an output is audited against everything the
project released before, through the real services, data and recipes; the attacks are
constructed from the project's dataset, and what they should isolate is computed from it."""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from enclave.control.context import Context
from enclave.control.db import transaction
from output_checker.queue import ledger_store, service
from output_checker.queue import models as m
from output_checker.queue.errors import Conflict, IntegrityFailure, WorkflowError
from output_checker.queue.ledger_cells import OutputCells
from output_checker.queue.views import FileView
from output_checker.queue.workflow import Status
from tests.output_checker.queue.factories import (
    Output,
    QueueWorld,
    add_output,
    approve_all,
    dataset_frame,
    distinct,
    make_request,
    recipe_output,
    table_output,
)

T = 10  # the project's threshold (the default parameters)
NOT_90 = {"column": "age", "op": "!=", "value": "90+"}


def _released(ctx: Context, qw: QueueWorld, *outputs: Output, title: str = "Earlier") -> str:
    return make_request(ctx, qw, Status.RELEASED, outputs=outputs, title=title)


def _submit_new(ctx: Context, qw: QueueWorld, output: Output) -> FileView:
    rid = service.create_request(ctx, qw.author, project=qw.project, title="New").id
    file_id = add_output(ctx, qw, rid, distinct(output))
    (file,) = [f for f in service.get_request(ctx, qw.author, rid).files if f.id == file_id]
    return file


def _report(file: FileView) -> dict[str, Any]:
    assert file.ledger is not None
    return file.ledger


def test_a_subpopulation_off_by_one_group_fails_and_names_the_release(
    ctx: Context, qw: QueueWorld
) -> None:
    earlier = _released(ctx, qw, recipe_output(qw, "all-clients.csv"))
    file = _submit_new(ctx, qw, recipe_output(qw, "not-90.csv", filters=(NOT_90,)))
    frame = dataset_frame()
    dropped = frame[frame.age == "90+"].groupby("region").size()
    report = _report(file)
    assert file.automated_status == "fail" and "differencing" in file.check_summary
    assert report["checked"] and report["released_outputs"] == 1
    found = {tuple(f["cell"]["key"]): f for f in report["differencing"]}
    assert set(found) == {(region,) for region in dropped.index}
    for region, isolated in dropped.items():
        finding = found[(region,)]
        assert finding["isolated"] == isolated and finding["nested"]
        assert finding["other"]["key"] == [region]
        assert finding["other"]["output"]["request"] == earlier
        assert finding["other"]["output"]["label"] == "all-clients.csv in “Earlier”"
    resolving = {offer["kind"] for offer in report["mitigations"] if offer["resolves"]}
    assert "drop" in resolving and "round" in resolving
    assert any(
        o["kind"] == "round" and o["base"] == 5 and not o["resolves"] for o in report["mitigations"]
    )


def test_overlapping_year_bands_are_caught_where_the_difference_is_small(
    ctx: Context, qw: QueueWorld
) -> None:
    to_2020 = {"column": "year", "op": "<=", "value": 2020}
    to_2021 = {"column": "year", "op": "<=", "value": 2021}
    _released(ctx, qw, recipe_output(qw, "to-2020.csv", filters=(to_2020,)))
    file = _submit_new(ctx, qw, recipe_output(qw, "to-2021.csv", filters=(to_2021,)))
    frame = dataset_frame()
    added = frame[frame.year == 2021].groupby("region").size()
    expected = {(region,) for region, n in added.items() if 0 < n < T}
    found = {tuple(f["cell"]["key"]) for f in _report(file)["differencing"]}
    assert found == expected and expected  # the data give some small and some large bands
    assert (file.automated_status == "fail") == bool(expected)


@pytest.mark.parametrize(
    ("released", "new"),
    [
        # disjoint populations: subtracting isolates nobody
        ({"column": "sex", "op": "==", "value": "f"}, {"column": "sex", "op": "==", "value": "m"}),
        # a difference of 25 people per region, at least T
        (None, {"column": "sex", "op": "==", "value": "f"}),
    ],
)
def test_disjoint_populations_and_large_differences_pass(
    ctx: Context, qw: QueueWorld, released: dict[str, Any] | None, new: dict[str, Any]
) -> None:
    _released(ctx, qw, recipe_output(qw, "earlier.csv", filters=(released,) if released else ()))
    file = _submit_new(ctx, qw, recipe_output(qw, "new.csv", filters=(new,)))
    report = _report(file)
    assert report["checked"] and report["released_outputs"] == 1
    assert report["differencing"] == [] and report["lp"] == []
    assert file.automated_status == "pass" and "no differencing" in file.check_summary


@pytest.mark.parametrize(("base", "caught"), [(5, True), (10, False)])
def test_rounding_to_a_base_of_at_least_t_resolves_the_subpopulation_attack(
    ctx: Context, qw: QueueWorld, base: int, caught: bool
) -> None:
    """The mitigation the file's page offers, applied: the same table rounded (spec §11.1,
    the base must be at least max(T, 2 x the protection level))."""
    _released(ctx, qw, recipe_output(qw, "all-clients.csv"))
    rounded = recipe_output(qw, "not-90.csv", filters=(NOT_90,), round_to=base)
    file = _submit_new(ctx, qw, rounded)
    assert file.recheck == "matches" and f"rounded to base {base}" in file.check_summary
    assert bool(_report(file)["differencing"]) is caught


def test_an_earlier_total_released_rounded_no_longer_gives_back_a_suppressed_cell(
    ctx: Context, qw: QueueWorld
) -> None:
    """West's total (43) released rounded to 10 is known only within [35, 44]: with 20 + 20
    published, the suppressed west/c (3) lies in [0, 4], wide enough."""
    bands = _bands(qw)
    _released(ctx, qw, recipe_output(qw, "all-clients.csv", dataset=bands, round_to=10))
    by_band = recipe_output(qw, "by-band.csv", columns=("band",), protect=True, dataset=bands)
    assert _report(_submit_new(ctx, qw, by_band))["lp"] == []


def test_a_mean_and_a_count_reveal_a_sum(ctx: Context, qw: QueueWorld) -> None:
    """A released mean of stay, with a released count of the same people, gives away the
    sum of stay; a new sum without the 90+ people then isolates their stays."""
    _released(
        ctx,
        qw,
        recipe_output(qw, "clients.csv"),
        recipe_output(qw, "mean-stay.csv", values="stay", aggregation="mean"),
    )
    file = _submit_new(
        ctx, qw, recipe_output(qw, "stay.csv", values="stay", aggregation="sum", filters=(NOT_90,))
    )
    findings = _report(file)["differencing"]
    assert {tuple(f["cell"]["key"]) for f in findings} == {("west",)}
    assert {f["other"]["quantity"] for f in findings} == {"mean of stay"}
    assert file.automated_status == "fail"


def test_weighted_counts_are_sums_of_weights(ctx: Context, qw: QueueWorld) -> None:
    _released(ctx, qw, recipe_output(qw, "weighted.csv", weights="stay"))
    file = _submit_new(
        ctx, qw, recipe_output(qw, "weighted-not-90.csv", weights="stay", filters=(NOT_90,))
    )
    findings = _report(file)["differencing"]
    assert {tuple(f["cell"]["key"]) for f in findings} == {("west",)}
    assert findings[0]["cell"]["quantity"] == "sum of weighted count (stay)"


def test_a_weighted_mean_and_its_weighted_count_reveal_a_weighted_sum(
    ctx: Context, qw: QueueWorld
) -> None:
    """Weighted by year: the released mean of stay times the released sum of the weights is
    the weighted sum of stay, so a new weighted sum without the 90+ people isolates theirs.
    The same mean beside an unweighted count reveals nothing."""
    weighted_mean = recipe_output(
        qw, "mean-stay-by-year.csv", values="stay", aggregation="mean", weights="year"
    )
    new = recipe_output(
        qw, "stay-by-year.csv", values="stay", aggregation="sum", weights="year", filters=(NOT_90,)
    )
    _released(ctx, qw, recipe_output(qw, "clients.csv"), weighted_mean)
    assert _report(_submit_new(ctx, qw, new))["differencing"] == []

    _released(ctx, qw, recipe_output(qw, "weight-by-region.csv", weights="year"), title="Later")
    file = _submit_new(ctx, qw, new)
    findings = _report(file)["differencing"]
    assert {tuple(f["cell"]["key"]) for f in findings} == {("west",)}
    assert findings[0]["cell"]["quantity"] == "sum of stay weighted by year"
    assert findings[0]["other"]["quantity"] == "mean of stay weighted by year"
    assert file.automated_status == "fail"
    # the mitigations rebuild the weighted sum, and dropping the cell resolves the finding
    offers = _report(file)["mitigations"]
    assert any(o["kind"] == "drop" and o["resolves"] for o in offers)


def test_a_mean_alone_is_not_a_sum(ctx: Context, qw: QueueWorld) -> None:
    """Without a count of the same people, a mean's N is unknown: its sum is not revealed."""
    _released(ctx, qw, recipe_output(qw, "mean-stay.csv", values="stay", aggregation="mean"))
    file = _submit_new(
        ctx, qw, recipe_output(qw, "stay.csv", values="stay", aggregation="sum", filters=(NOT_90,))
    )
    assert _report(file)["differencing"] == []


def _bands(qw: QueueWorld) -> tuple[str, str]:
    """A second dataset of the project: 20 people per region and band, except 3 in west/c."""
    sizes = {(region, band): 20 for region in ("east", "north", "west") for band in "abc"}
    sizes["west", "c"] = 3
    frame = pd.DataFrame(
        [(region, band) for (region, band), n in sizes.items() for _ in range(n)],
        columns=["region", "band"],
    )
    path = qw.data_dir / "projects" / qw.project / "data" / "bands.parquet"
    frame.to_parquet(path)
    return "bands", "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_suppressed_cell_recovered_through_an_earlier_total(ctx: Context, qw: QueueWorld) -> None:
    """The new table suppresses west/c (3 people) and protects it within itself; the total
    of west released earlier gives it back (43 - 20 - 20). The LP audit pins it and names
    the release; the same table with nothing released before passes the LP audit."""
    bands = _bands(qw)
    by_band = recipe_output(qw, "by-band.csv", columns=("band",), protect=True, dataset=bands)
    alone = _report(_submit_new(ctx, qw, by_band))
    assert alone["checked"] and alone["lp"] == []
    _released(ctx, qw, recipe_output(qw, "all-clients.csv", dataset=bands))
    report = _report(_submit_new(ctx, qw, by_band))
    pinned = {tuple(f["cell"]["key"]): f for f in report["lp"]}
    assert pinned[("west", "c")]["interval"] == [3, 3]
    assert [e["label"] for e in pinned[("west", "c")]["earlier"]] == [
        "all-clients.csv in “Earlier”"
    ]


def test_a_later_total_exposing_an_earlier_suppressed_cell_fails(
    ctx: Context, qw: QueueWorld
) -> None:
    """The reverse order: west/c was suppressed in a release; a new total of west would give
    it back, so the new output fails, naming the cell of the earlier release it exposes."""
    bands = _bands(qw)
    earlier = _released(
        ctx, qw, recipe_output(qw, "by-band.csv", columns=("band",), protect=True, dataset=bands)
    )
    report = _report(_submit_new(ctx, qw, recipe_output(qw, "totals.csv", dataset=bands)))
    (finding,) = [f for f in report["lp"] if f["cell"]["key"] == ["west", "c"]]
    assert finding["interval"] == [3, 3] and finding["cell"]["output"]["request"] == earlier


def test_outputs_released_together_are_audited_against_each_other(
    ctx: Context, qw: QueueWorld
) -> None:
    """Nothing released yet: each output alone passes, but submitted together they would be
    released together, so the submission audits them as one system."""
    rid = make_request(
        ctx,
        qw,
        Status.PENDING,
        outputs=(
            recipe_output(qw, "all.csv"),
            recipe_output(qw, "not-90.csv", filters=(NOT_90,)),
        ),
    )
    files = service.get_request(ctx, qw.author, rid).files
    assert [f.automated_status for f in files] == ["pass", "pass"]
    with pytest.raises(WorkflowError, match=r"need an exception request: all\.csv, not-90\.csv"):
        service.submit(ctx, qw.author, rid)
    by_name = {f.name: f for f in service.get_request(ctx, qw.author, rid).files}
    for name, other in (("all.csv", "not-90.csv"), ("not-90.csv", "all.csv")):
        assert by_name[name].automated_status == "fail"  # kept, so the author sees why
        labels = {f["other"]["output"]["label"] for f in _report(by_name[name])["differencing"]}
        assert labels == {f"{other} in this request"}


def test_an_output_without_a_recipe_is_flagged_not_checked(ctx: Context, qw: QueueWorld) -> None:
    _released(ctx, qw, recipe_output(qw, "all-clients.csv"))
    file = _submit_new(ctx, qw, table_output(qw, "by-region.csv", with_recipe=False))
    report = _report(file)
    assert not report["checked"] and "not checked against earlier releases" in report["reason"]
    assert "not checked against earlier releases" in file.check_summary


def test_a_release_without_a_recipe_is_counted_as_unchecked(ctx: Context, qw: QueueWorld) -> None:
    _released(ctx, qw, table_output(qw, "by-region.csv", with_recipe=False))
    file = _submit_new(ctx, qw, recipe_output(qw, "not-90.csv", filters=(NOT_90,)))
    report = _report(file)
    assert report["unchecked_outputs"] == 1 and report["differencing"] == []


def _entries(ctx: Context) -> list[tuple[int, str | None]]:
    with transaction(ctx.engine, readonly=True) as session:
        rows = session.execute(select(m.LedgerEntry.file_id, m.LedgerEntry.sha256)).all()
    return [(file_id, sha256) for file_id, sha256 in rows]


def test_approval_enters_the_ledger_and_revocation_never_removes_it(
    ctx: Context, qw: QueueWorld
) -> None:
    rid = make_request(ctx, qw, Status.APPROVED, outputs=(recipe_output(qw, "all.csv"),))
    ((_, digest),) = _entries(ctx)
    assert digest is not None
    assert ledger_store.load(ctx.data_dir, digest, "x").aggregates.n_rows == 4  # one per region
    service.revoke_release(ctx, qw.checker_a, rid, reason="breach: wrong file")
    assert len(_entries(ctx)) == 1  # what was released stays known
    file = _submit_new(ctx, qw, recipe_output(qw, "not-90.csv", filters=(NOT_90,)))
    assert file.automated_status == "fail"


def test_an_altered_ledger_file_is_refused(ctx: Context, qw: QueueWorld) -> None:
    _released(ctx, qw, recipe_output(qw, "all.csv"))
    ((_, digest),) = _entries(ctx)
    assert digest is not None
    path = ledger_store.store(ctx.data_dir).path_of(digest)
    os.chmod(path, 0o640)
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0xFF
    path.write_bytes(bytes(content))
    with pytest.raises(IntegrityFailure, match="does not match its hash"):
        _submit_new(ctx, qw, recipe_output(qw, "not-90.csv", filters=(NOT_90,)))


def _alter(ctx: Context, digest: str) -> None:
    path = ledger_store.store(ctx.data_dir).path_of(digest)
    os.chmod(path, 0o640)
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0xFF
    path.write_bytes(bytes(content))


def _released_digest(ctx: Context, qw: QueueWorld) -> str:
    _released(ctx, qw, recipe_output(qw, "all.csv"))
    ((_, digest),) = _entries(ctx)
    assert digest is not None
    return digest


def _same(a: OutputCells, b: OutputCells) -> bool:
    return (
        np.array_equal(a.keys, b.keys)
        and np.array_equal(a.hidden, b.hidden)
        and np.array_equal(a.protection, b.protection)
        and (a.aggregates.weights != b.aggregates.weights).nnz == 0
    )


def test_a_verified_ledger_file_is_not_read_again(ctx: Context, qw: QueueWorld) -> None:
    """Once verified, a ledger file is served from memory: altering it afterwards changes
    nothing, the audit still runs on the cells that matched the file's name."""
    digest = _released_digest(ctx, qw)
    verified = ledger_store.load(ctx.data_dir, digest, "x")
    _alter(ctx, digest)
    assert _same(ledger_store.load(ctx.data_dir, digest, "x"), verified)
    file = _submit_new(ctx, qw, recipe_output(qw, "not-90.csv", filters=(NOT_90,)))
    assert file.automated_status == "fail"
    ledger_store.clear_cache()
    with pytest.raises(IntegrityFailure, match="does not match its hash"):
        ledger_store.load(ctx.data_dir, digest, "x")


def test_a_ledger_file_altered_before_its_first_read_is_never_cached(
    ctx: Context, qw: QueueWorld
) -> None:
    digest = _released_digest(ctx, qw)
    _alter(ctx, digest)
    for _ in range(2):  # the failure is not remembered as a success
        with pytest.raises(IntegrityFailure, match="does not match its hash"):
            ledger_store.load(ctx.data_dir, digest, "x")


def test_changing_loaded_cells_does_not_change_the_cached_ones(
    ctx: Context, qw: QueueWorld
) -> None:
    digest = _released_digest(ctx, qw)
    first = ledger_store.load(ctx.data_dir, digest, "x")
    kept = ledger_store.decode(ledger_store.store(ctx.data_dir).read(digest), "x")
    first.aggregates.weights.data[:] = 0
    first.keys[:] = 0
    first.hidden[:] = True
    assert _same(ledger_store.load(ctx.data_dir, digest, "x"), kept)
    assert ledger_store.load(ctx.data_dir, digest, "y").aggregates.grids[0].output == "y"


def test_the_cache_is_bounded(
    ctx: Context, qw: QueueWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past its bound the least recently used file goes, and is verified again when read."""
    monkeypatch.setattr(ledger_store, "_CACHE", ledger_store._Cache(1, ledger_store.CACHE_BYTES))
    digest = _released_digest(ctx, qw)
    cells = ledger_store.load(ctx.data_dir, digest, "x")
    other = ledger_store.save(ctx.data_dir, replace(cells, base=5))
    assert other != digest
    ledger_store.load(ctx.data_dir, other, "x")  # pushes the first one out
    _alter(ctx, digest)
    with pytest.raises(IntegrityFailure, match="does not match its hash"):
        ledger_store.load(ctx.data_dir, digest, "x")


def test_an_approval_since_the_audit_is_caught_before_the_second_release(
    ctx: Context, qw: QueueWorld
) -> None:
    """Two requests reviewed side by side, each clean against the (empty) ledger: approving
    the first makes the second difference with it, and its approval is stopped."""
    first = make_request(ctx, qw, Status.REVIEWED, outputs=(recipe_output(qw, "all.csv"),))
    second = make_request(
        ctx, qw, Status.REVIEWED, outputs=(recipe_output(qw, "not-90.csv", filters=(NOT_90,)),)
    )
    (before,) = service.get_request(ctx, qw.checker_c, second).files
    assert before.automated_status == "pass"
    service.approve(ctx, qw.checker_c, first, comment="fine")
    with pytest.raises(Conflict, match="difference with an output approved since"):
        service.approve(ctx, qw.checker_c, second, comment="fine")
    (after,) = service.get_request(ctx, qw.checker_c, second).files
    assert after.automated_status == "fail"
    assert _report(after)["differencing"][0]["other"]["output"]["request"] == first
    assert service.get_request(ctx, qw.checker_c, second).summary.status is Status.REVIEWED
    with transaction(ctx.engine, readonly=True) as session:
        assert session.scalar(select(func.count()).select_from(m.LedgerEntry)) == 1


def test_outputs_re_audited_at_approval_are_still_audited_against_each_other(
    ctx: Context, qw: QueueWorld
) -> None:
    """Two outputs of one request that difference each other go to review with exception
    requests. An approval elsewhere makes them stale; their re-audit before approval must
    again audit them together, or the finding between them would silently disappear."""
    rid = make_request(
        ctx,
        qw,
        Status.PENDING,
        outputs=(
            recipe_output(qw, "all.csv"),
            recipe_output(qw, "not-90.csv", filters=(NOT_90,)),
        ),
    )
    with pytest.raises(WorkflowError, match="need an exception request"):
        service.submit(ctx, qw.author, rid)
    for file in service.get_request(ctx, qw.author, rid).files:
        service.set_exception(ctx, qw.author, rid, file.id, "published together on purpose")
    service.submit(ctx, qw.author, rid)
    approve_all(ctx, qw, rid, qw.checker_a)
    approve_all(ctx, qw, rid, qw.checker_b)
    make_request(ctx, qw, Status.APPROVED, outputs=(recipe_output(qw, "other.csv"),))
    service.approve(ctx, qw.checker_c, rid, comment="reviewed with the exception")
    by_name = {f.name: f for f in service.get_request(ctx, qw.checker_c, rid).files}
    for name, other in (("all.csv", "not-90.csv"), ("not-90.csv", "all.csv")):
        assert by_name[name].automated_status == "fail"
        labels = {f["other"]["output"]["label"] for f in _report(by_name[name])["differencing"]}
        assert f"{other} in this request" in labels
