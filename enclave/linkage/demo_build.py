"""The steps of ``enclave.linkage.demo.build_demo_extract``, each skipped when its result
exists: people, synthetic deliveries, ingest, linkage,
the study project with its grants, and the extract. Imported only when there is work."""

from __future__ import annotations

import dataclasses
import os
from datetime import timedelta
from pathlib import Path

import pandas as pd

from enclave.control.context import Context
from enclave.control.db import make_engine, upgrade
from enclave.control.errors import NotFound
from enclave.control.service import grants, members, people, projects
from enclave.linkage.deliveries import write_synthetic
from enclave.linkage.demo import ADMIN, CUSTODIAN, PURPOSE, RESEARCHER, STUDY_GRANTS
from enclave.linkage.extracts import MANIFEST, build_extract
from enclave.linkage.ingest import current_sources, ingest_delivery
from enclave.linkage.keys import generate_master_key, parse_master_key
from enclave.linkage.pipeline import load_sources, run_linkage, settings_for
from enclave.linkage.zones import Zones, remove_tree
from enclave.settings import Settings
from enclave.synth.ministries import SOURCES, generate_ministries
from output_checker.microdata.recipe import Step

PROJECT_YEARS = 3
# The custodian's treatment of the demographics before its 5-anonymity policy is checked: where
# a person must lose a value, the postcode area (the finest geography) goes first and the
# birth year, which the study analyses, last (importance 1 = suppressed last).
DEMO_TREATMENTS = {
    "health-demographics": (
        Step(
            "local_suppression",
            {"k": 5, "importance": {"postcode_area": 3, "sex": 2, "birth_year": 1}},
        ),
    )
}
U_MAX_PAIRS = 2e5  # u is estimated well enough from 2e5 random pairs at demo sizes, 5x faster


def build(
    root: Path,
    population: int,
    seed: int,
    project: str,
    *,
    master_key: bytes | None,
    progress: bool,
) -> tuple[str, ...]:
    """Carry out every missing step under ``root``; return the steps carried out."""
    steps: list[str] = []
    settings = Settings(data_dir=root)  # the control plane: SQLite under <root>/db
    (root / "db").mkdir(exist_ok=True)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    ctx = Context(engine=engine, data_dir=root)
    try:
        zones = Zones(root)
        _people(ctx, steps)
        synth = _synthesise(root, population, seed, steps, progress)
        for source in SOURCES:
            if source not in current_sources(zones):
                _ingest(ctx, zones, synth / "deliveries" / source, progress)
                steps.append(f"ingest {source}")
        _link(zones, synth, steps, progress)
        _project(ctx, project, steps)
        if not (zones.project_data(project) / MANIFEST).exists():
            key = master_key if master_key is not None else _demo_master_key(root)
            build_extract(
                ctx, ADMIN, zones, project, master_key=key, custodian=CUSTODIAN,
                treatments=DEMO_TREATMENTS, progress=progress,
            )  # fmt: skip
            steps.append("extract")
    finally:
        ctx.close()
    return tuple(steps)


def _people(ctx: Context, steps: list[str]) -> None:
    """The demo's admin, data custodian and accredited researcher."""
    try:
        people.get_person(ctx, ADMIN, ADMIN)
    except NotFound:
        people.bootstrap_admin(ctx, email=ADMIN, name="Demo Admin", organisation="Enclave")
        steps.append("people")
    known = {p.email for p in people.list_people(ctx, ADMIN)}
    for email, role, name in (
        (CUSTODIAN, "data_custodian", "Demo Custodian"),
        (RESEARCHER, "researcher", "Ada Researcher"),
    ):
        if email not in known:
            people.create_person(
                ctx, ADMIN, email=email, name=name, organisation="Demo", roles=[role]
            )
    researcher = people.get_person(ctx, ADMIN, RESEARCHER)
    if researcher.accredited_until is None or researcher.accredited_until <= ctx.today():
        people.accredit(
            ctx,
            ADMIN,
            RESEARCHER,
            scheme="Safe Researcher",
            reference="SR-DEMO",
            issued_on=ctx.today() - timedelta(days=30),
            expires_on=ctx.today() + timedelta(days=365 * PROJECT_YEARS + 30),
        )


def _synthesise(root: Path, population: int, seed: int, steps: list[str], progress: bool) -> Path:
    """The custodians' deliveries and the truth under ``<root>/synth`` (written whole)."""
    synth = root / "synth"
    if (synth / "truth" / "effects.json").exists():
        return synth
    partial = root / "synth.partial"
    remove_tree(partial)
    remove_tree(synth)
    write_synthetic(generate_ministries(population, seed=seed), partial, progress=progress)
    os.replace(partial, synth)
    steps.append("synth")
    return synth


def _ingest(ctx: Context, zones: Zones, directory: Path, progress: bool) -> None:
    # the demo's own generated deliveries: no custodian approves them (never enclave data)
    ingest_delivery(
        ctx,
        ADMIN,
        zones,
        directory,
        custodian=CUSTODIAN,
        purposes=[PURPOSE],
        progress=progress,
        unregistered_input=True,
    )


def _link(zones: Zones, synth: Path, steps: list[str], progress: bool) -> None:
    """The person index over every ingested source, with the true quality in the report."""
    if zones.person_index.exists():
        linked = set(pd.read_parquet(zones.person_index, columns=["source"])["source"])
        if linked >= set(SOURCES):
            return
    truth = pd.read_csv(synth / "truth" / "links.csv", dtype=str)
    truth = truth.rename(columns={"person_id": "entity"})
    chosen = dataclasses.replace(settings_for(load_sources(zones)), u_max_pairs=U_MAX_PAIRS)
    run_linkage(zones, settings=chosen, truth=truth, progress=progress)
    steps.append("link")


def _project(ctx: Context, slug: str, steps: list[str]) -> None:
    """An active project with the researcher as member and the study's grants in force."""
    try:
        view = projects.get_project(ctx, ADMIN, slug)
    except NotFound:
        today = ctx.today()
        view = projects.create_project(
            ctx,
            ADMIN,
            slug=slug,
            title="Outcomes of children with an FASD-like diagnosis (demonstration)",
            lay_summary="Health, school, social assistance and justice outcomes of children "
            "diagnosed with an FASD-like condition, compared with matched children.",
            public_benefit="Better support for affected children and their families.",
            organisation="Demo Data Lab",
            purpose=PURPOSE,
            start_date=today,
            end_date=today + timedelta(days=365 * PROJECT_YEARS),
            legal_basis="Synthetic data: demonstration only",
            ethics_reference="DEMO",
            dsa_reference="DEMO",
        )
        steps.append("project")
    if view.state == "proposed":
        view = projects.approve_project(ctx, ADMIN, slug)
    if not members.list_members(ctx, ADMIN, slug):
        members.add_member(
            ctx, ADMIN, project=slug, email=RESEARCHER, role="researcher",
            expires_on=view.end_date,
        )  # fmt: skip
    today = ctx.today()
    held = {g.dataset for g in grants.list_grants(ctx, ADMIN, project=slug) if g.in_force(today)}
    for dataset, variables in STUDY_GRANTS.items():
        if dataset not in held:
            pending = grants.request_grant(
                ctx, ADMIN, project=slug, dataset=dataset, variables=variables,
                expires_on=view.end_date,
            )  # fmt: skip
            grants.approve_grant(ctx, CUSTODIAN, pending.uuid)
            steps.append(f"grant {dataset}")
    if view.state == "approved":
        projects.activate_project(ctx, ADMIN, slug)


def _demo_master_key(root: Path) -> bytes:
    """The demo's master key, generated once (0600) in ``<root>/secrets``."""
    folder = root / "secrets"
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / "linkage-master.key"
    if not path.exists():
        generate_master_key(path)
    return parse_master_key(path.read_text(encoding="ascii"))
