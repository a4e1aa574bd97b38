"""Ingest takes only what custodians approved (SATRE 3.1.04): a delivery whose files are not
dataset versions approved by their custodian is refused before anything is read into the
zones, with the refusal audited and nothing stored or registered; once the custodian has
approved every file, the same delivery goes through, recorded as one audited use.
``--unregistered-input`` is the explicit escape hatch for generated test data."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from enclave.cli import main
from enclave.control import audit
from enclave.control.context import Context
from enclave.control.errors import ControlError
from enclave.control.service import datasets, ingress
from enclave.control.varspec import variable
from enclave.linkage import catalogue
from enclave.linkage.deliveries import Delivery, read_delivery
from enclave.linkage.ingest import current_sources, delivery_files, ingest_delivery
from enclave.linkage.schemas import TableSchema
from enclave.linkage.zones import Zones
from tests.enclave.control.factories import World, audit_tail, counts
from tests.enclave.test_cli_admin import (  # noqa: F401 - env is a fixture
    ADMIN,
    CUSTODIAN,
    env,
)

SOURCE = "human_services"
PURPOSES = ["health_research", "social_research"]


def _ingest(ctx: Context, world: World, zones: Zones, folder: Path) -> object:
    return ingest_delivery(
        ctx, world.admin, zones, folder, custodian=world.custodian, purposes=PURPOSES
    )


def _nothing_in_the_zones(zones: Zones) -> None:
    assert not zones.linkage.exists() and not zones.content.exists()
    assert current_sources(zones) == {}
    assert list(zones.data_dir.glob(".staging-*")) == []


def _files_by_slug(delivery: Delivery) -> dict[str, tuple[Path, TableSchema]]:
    """Each data file of the delivery, under the slug ingest registers it as."""
    source = delivery.source
    out = {
        catalogue.slug_for(source, "identifiers"): (
            delivery.identifiers,
            delivery.layout.schema(source),
        )
    }
    for table in delivery.tables:
        out[catalogue.slug_for(source, table.name)] = (table.path, table.schema)
    return out


def _approve(ctx: Context, world: World, slug: str, path: Path, schema: TableSchema) -> str:
    """The custodian registers the dataset, submits the file and approves it."""
    datasets.register_dataset(
        ctx,
        world.custodian,
        slug=slug,
        name=slug,
        source_agency="Human Services",
        description=f"{slug} as delivered",
        version="00" * 32,  # a placeholder: approval makes the file's hash the version
        custodian=world.custodian,
        permitted_purposes=PURPOSES,
        variables=[variable(f.name, f.sensitivity, f.description) for f in schema.fields],
    )
    view = ingress.submit_version(ctx, world.custodian, slug, path)
    assert view.state == "submitted", view.report
    ingress.decide_version(ctx, world.custodian, view.uuid, approve=True, reason="as agreed")
    return view.sha256


def test_a_delivery_no_custodian_approved_is_refused_and_leaves_nothing(
    ctx: Context, world: World, zones: Zones, deliveries: Path
) -> None:
    folder = deliveries / SOURCE
    before = counts(ctx)
    with pytest.raises(ControlError) as refused:
        _ingest(ctx, world, zones, folder)
    assert refused.value.rule == "unapproved_input"
    assert "\n" not in str(refused.value)
    assert "identifiers.csv is not a version of any dataset approved" in str(refused.value)
    assert audit_tail(ctx) == [("use_dataset_version", "refused", "unapproved_input")]
    assert counts(ctx) == before  # nothing registered
    _nothing_in_the_zones(zones)


def test_a_partly_approved_or_unapproved_version_is_refused(
    ctx: Context, world: World, zones: Zones, deliveries: Path
) -> None:
    """Attack: approve all files but one, and submit (not approve) that one."""
    folder = deliveries / SOURCE
    files = _files_by_slug(read_delivery(folder))
    *approved, (held_slug, (held_path, held_schema)) = files.items()
    for slug, (path, schema) in approved:
        _approve(ctx, world, slug, path, schema)
    datasets.register_dataset(
        ctx,
        world.custodian,
        slug=held_slug,
        name=held_slug,
        source_agency="Human Services",
        description="held back",
        version="00" * 32,
        custodian=world.custodian,
        permitted_purposes=PURPOSES,
        variables=[variable(f.name, f.sensitivity, f.description) for f in held_schema.fields],
    )
    assert ingress.submit_version(ctx, world.custodian, held_slug, held_path).state == "submitted"
    before = counts(ctx)
    with pytest.raises(ControlError) as refused:
        _ingest(ctx, world, zones, folder)
    assert refused.value.rule == "unapproved_input"
    assert held_path.name in str(refused.value)
    assert counts(ctx) == before
    _nothing_in_the_zones(zones)
    # the custodian (not the linkage operator) is also refused: using versions is the admin's
    with pytest.raises(ControlError) as not_operator:
        ingest_delivery(
            ctx, world.custodian, zones, folder, custodian=world.custodian, purposes=PURPOSES
        )
    assert not_operator.value.rule == "role"
    _nothing_in_the_zones(zones)


def test_an_approved_delivery_goes_through_as_one_audited_use(
    ctx: Context, world: World, zones: Zones, deliveries: Path
) -> None:
    folder = deliveries / SOURCE
    delivery = read_delivery(folder)
    files = _files_by_slug(delivery)
    hashes = {
        slug: _approve(ctx, world, slug, path, schema) for slug, (path, schema) in files.items()
    }

    result = _ingest(ctx, world, zones, folder)

    # the approved datasets were already registered (at their approved version); only the
    # demographics the linkage unit derives are new
    assert result.registered == (catalogue.slug_for(SOURCE, "demographics"),)  # type: ignore[attr-defined]
    use = audit.records(ctx.engine, action="use_dataset_version")[-1]
    assert use.outcome == "ok" and use.actor == world.admin
    assert [(i["dataset"], i["sha256"]) for i in use.detail["inputs"]] == list(hashes.items())
    assert len(delivery_files(delivery)) == len(hashes)
    assert zones.identifiers(SOURCE).is_file()
    assert current_sources(zones)[SOURCE]["version"] == f"sha256:{hashes[next(iter(hashes))]}"


def test_cli_ingest_refuses_by_default_and_takes_test_data_only_when_told(
    env: Path,  # noqa: F811 - the fixture
    deliveries: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def run(command: str) -> tuple[int, str, str]:
        code = main(shlex.split(command))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    assert run("admin init")[0] == 0
    assert run(f"admin bootstrap --email {ADMIN} --name Ada --organisation E")[0] == 0
    created = run(
        f"admin create-person --as {ADMIN} --email {CUSTODIAN} --name C --organisation O "
        "--role data_custodian"
    )
    assert created[0] == 0
    folder = deliveries / SOURCE
    ingest = (
        f"link ingest {folder} --as {ADMIN} --custodian {CUSTODIAN} "
        "--purpose social_research --quiet"
    )
    code, out, err = run(ingest)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and err.startswith("enclave: error: ")
    assert err.rstrip().endswith("[unapproved_input]"), err
    zones = Zones(env)
    _nothing_in_the_zones(zones)
    code, out, err = run("admin list-datasets --as " + ADMIN)
    assert code == 0 and out.splitlines()[1:] == []

    code, out, err = run(f"{ingest} --unregistered-input")
    assert code == 0, err
    assert "warning: --unregistered-input" in err
    assert "registered: human-services-identifiers" in out
    assert zones.identifiers(SOURCE).is_file()
