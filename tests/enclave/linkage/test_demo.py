"""The demonstration installation: built through the real services, reused on a second call,
resumed after an interruption, refused in a directory holding something else."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from enclave.control.context import Context
from enclave.control.db import make_engine
from enclave.control.service import grants, members, projects
from enclave.linkage.demo import ADMIN, RESEARCHER, STUDY_GRANTS, build_demo_extract
from enclave.linkage.errors import LinkageError
from enclave.linkage.extracts import MANIFEST, PERSON, coarsened_name
from enclave.linkage.schemas import DEMOGRAPHICS
from enclave.linkage.zones import Zones, remove_tree
from enclave.settings import Settings

pytestmark = pytest.mark.slow
POPULATION, SEED = 1_500, 3


def test_built_through_the_services_reused_and_resumed(tmp_path: Path) -> None:
    # one test, so that parallel workers build the installation once
    built = build_demo_extract(tmp_path / "enclave", population=POPULATION, seed=SEED)
    assert built.steps[:2] == ("people", "synth")
    assert {"link", "project", "extract"} <= set(built.steps)
    ctx = Context(engine=make_engine(Settings(data_dir=built.data_dir).database_url),
                  data_dir=built.data_dir)  # fmt: skip
    try:
        assert projects.get_project(ctx, ADMIN, built.project).state == "active"
        assert [m.email for m in members.list_members(ctx, ADMIN, built.project)] == [RESEARCHER]
        in_force = {
            g.dataset: set(g.variables)
            for g in grants.list_grants(ctx, ADMIN, project=built.project)
            if g.in_force(ctx.today())
        }
    finally:
        ctx.close()
    assert in_force == {d: set(v) for d, v in STUDY_GRANTS.items()}
    # the extract holds the granted variables only, quasi-identifiers coarsened
    rules = {f.name: f.coarsen for f in DEMOGRAPHICS.fields}
    for dataset, variables in STUDY_GRANTS.items():
        table = pd.read_parquet(built.extract_dir / f"{dataset}.parquet")
        expected = {coarsened_name(v, rules.get(v)) for v in variables}
        assert set(table.columns) == {PERSON, *expected}, dataset
        assert len(table) > 0
    assert built.effects["fasd"]["cohort_size"] > 0
    assert built.outbox == built.data_dir / "projects" / built.project / "outbox" / "ada"

    manifest = (built.extract_dir / MANIFEST).read_bytes()
    again = build_demo_extract(built.data_dir, population=POPULATION, seed=SEED)
    assert again.steps == ()
    assert again.extract_dir == built.extract_dir and again.effects == built.effects
    assert (built.extract_dir / MANIFEST).read_bytes() == manifest

    with pytest.raises(LinkageError, match=f"holds a demonstration of population {POPULATION}"):
        build_demo_extract(built.data_dir, population=POPULATION + 1, seed=SEED)

    zones = Zones(built.data_dir)
    runs = (zones.linkage / "runs.jsonl").read_text().splitlines()
    remove_tree(built.extract_dir)  # as if stopped after ingest, before linking
    zones.person_index.unlink()
    resumed = build_demo_extract(built.data_dir, population=POPULATION, seed=SEED)
    assert resumed.steps == ("link", "extract")
    assert (zones.linkage / "runs.jsonl").read_text().splitlines()[: len(runs)] == runs
    assert (built.extract_dir / MANIFEST).exists()


def test_a_directory_holding_something_else_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(LinkageError, match="holds no demonstration"):
        build_demo_extract(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    with pytest.raises(LinkageError, match="at least 1"):
        build_demo_extract(tmp_path / "new", population=0)
    assert not (tmp_path / "new").exists()


def _rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))
