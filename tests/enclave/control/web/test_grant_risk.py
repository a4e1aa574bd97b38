"""The custodian sees the disclosure risk a grant would bring before deciding it (issue 13):
the granted quasi-identifiers of the dataset's content table, coarsened as the extract would,
held to the dataset's microdata policy, as the anonymisation report."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pandas as pd
import pytest

from enclave.control.context import Context
from enclave.control.service.microdata_policy import set_microdata_policy
from enclave.linkage import extracts
from enclave.linkage.zones import Zones
from tests.enclave.control.factories import VERSION, World, make_project, request
from tests.enclave.control.web.conftest import Web

FIELDS = [
    {"name": "record_key", "kind": "key", "sensitivity": "other", "coarsen": None},
    {"name": "age_band", "kind": "category", "sensitivity": "quasi_identifier", "coarsen": "keep"},
    {"name": "postcode_district", "kind": "text", "sensitivity": "quasi_identifier",
     "coarsen": "area"},
    {"name": "episodes", "kind": "integer", "sensitivity": "other", "coarsen": None},
]  # fmt: skip
RARE_DISTRICT = "ZE9"  # one record only: its area ZE must be suppressed, and never shown


def _content_zone(ctx: Context, world: World) -> None:
    """The world's dataset in the content zone, as ingestion leaves it."""
    rng = np.random.default_rng(5)
    n = 600
    table = pd.DataFrame(
        {
            "record_key": [f"R{i}" for i in range(n)],
            "age_band": rng.choice(["0-15", "16-34", "35-64", "65+"], n),
            "postcode_district": rng.choice(["AB1", "AB2", "CD4", "EF7"], n),
            "episodes": rng.integers(0, 9, n),
        }
    )
    table.loc[0, "postcode_district"] = RARE_DISTRICT
    path = Zones(ctx.data_dir).content_table(world.dataset, VERSION)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(path, index=False)
    meta = {"source": "health", "schema": {"name": "episodes", "fields": FIELDS}}
    path.with_suffix(".json").write_text(json.dumps(meta))


@pytest.fixture
def grant_id(ctx: Context, world: World) -> str:
    make_project(ctx, world, "study", grant=None)
    _content_zone(ctx, world)
    return request(ctx, world, "study", ("age_band", "postcode_district", "episodes")).uuid


def test_the_custodian_sees_the_report_before_deciding(web: Web, grant_id: str) -> None:
    web.login_as("data_custodian")
    assert f"/admin/grants/{grant_id}/risk" in web.page("/admin/grants")
    response = web.client.get(f"/admin/grants/{grant_id}/risk")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "postcode_area" in html and "age_band" in html
    assert "data:image/png;base64," in html  # the risk chart
    assert "Extract table hospital-episodes" in html
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)
    assert not re.search(r"\bZE9?\b", text)  # the rare area is counted, never named
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script" not in policy


def test_the_report_is_measured_once_per_policy(
    web: Web, ctx: Context, world: World, grant_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second page load reads the kept report instead of measuring the data again; a new
    policy is measured afresh."""
    web.login_as("data_custodian")
    first = web.client.get(f"/admin/grants/{grant_id}/risk").get_data(as_text=True)
    measured: list[str] = []
    preview = extracts.preview_grant_risk

    def counted(*args: Any, **kwargs: Any) -> Any:
        measured.append("again")
        return preview(*args, **kwargs)

    monkeypatch.setattr(extracts, "preview_grant_risk", counted)
    assert web.client.get(f"/admin/grants/{grant_id}/risk").get_data(as_text=True) == first
    assert measured == []
    kept = list((Zones(ctx.data_dir).reports / "grant-risk").iterdir())
    assert len(kept) == 1  # in the owner-only linkage zone:
    assert (Zones(ctx.data_dir).linkage.stat().st_mode & 0o777) == 0o700
    set_microdata_policy(ctx, world.custodian, world.dataset, k=3, max_global_risk=1e-4)
    assert web.client.get(f"/admin/grants/{grant_id}/risk").status_code == 200
    assert measured == ["again"]


def test_the_report_follows_the_custodians_policy(web: Web, ctx: Context, world: World,
                                                  grant_id: str) -> None:  # fmt: skip
    set_microdata_policy(ctx, world.custodian, world.dataset, k=1000, max_global_risk=1e-4)
    web.login_as("data_custodian")
    response = web.client.get(f"/admin/grants/{grant_id}/risk")
    assert response.status_code == 409
    assert "cannot meet its microdata policy" in response.get_data(as_text=True)


@pytest.mark.parametrize("role", ["researcher", "output_checker"])
def test_no_one_else_sees_it(web: Web, grant_id: str, role: str) -> None:
    web.login_as(role)
    response = web.client.get(f"/admin/grants/{grant_id}/risk")
    assert response.status_code == 403
    assert "data:image/png" not in response.get_data(as_text=True)
