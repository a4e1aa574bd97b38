"""Data ingress with the custodian's approval (SATRE 3.1.04, 3.1.11, 3.1.20): a submitted
version is stored by content hash, validated and scanned, reported without a single data
value, and usable by the linkage unit only once its dataset's custodian approves it."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import stat
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from enclave.cli import main
from enclave.control import audit
from enclave.control.context import Context
from enclave.control.db import transaction
from enclave.control.errors import (
    Conflict,
    ControlError,
    InvalidInput,
    PermissionDenied,
    RuleViolation,
)
from enclave.control.rules import PERMISSIONS, Action, Role
from enclave.control.service import datasets, ingress, people
from enclave.control.service.ingress import approved_version_path, resolve_linkage_inputs
from enclave.control.varspec import variable
from tests.enclave.control.factories import World, audit_tail, counts

DATASET = "hospital-episodes"  # the world's: nhs_number (direct), age_band, postcode_district,
# diagnosis, episodes; in the custody of world.custodian
SECRET = "Zephyrine Quixall-Oduya"  # a value that must never leave the file


def episodes(rows: int = 40, **changes: list[str]) -> pd.DataFrame:
    """A valid version of the world's dataset: every category seen at least 10 times."""
    frame = pd.DataFrame(
        {
            "nhs_number": [f"{9434765000 + i}" for i in range(rows)],
            "age_band": ["18-39", "40-64"] * (rows // 2),
            "postcode_district": ["AB12", "CD3"] * (rows // 2),
            "diagnosis": ["I21", "J45"] * (rows // 2),
            "episodes": [str(i) for i in range(rows)],
        }
    )
    for column, values in changes.items():
        frame[column] = values
    return frame


def write(tmp_path: Path, frame: pd.DataFrame, name: str = "version.csv") -> Path:
    path = tmp_path / "uploads" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


def submit(ctx: Context, world: World, path: Path, **kw: str) -> ingress.VersionView:
    return ingress.submit_version(ctx, world.custodian, DATASET, path, **kw)


def current_version(ctx: Context, world: World) -> str:
    return datasets.get_dataset(ctx, world.admin, DATASET).version


def test_a_valid_file_is_stored_by_hash_and_submitted_with_a_clean_report(
    ctx: Context, world: World, tmp_path: Path
) -> None:
    path = write(tmp_path, episodes())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    before = current_version(ctx, world)

    view = submit(ctx, world, path)

    assert view.state == "submitted" and view.dataset == DATASET
    assert (view.sha256, view.size, view.version) == (
        digest,
        path.stat().st_size,
        f"sha256:{digest[:12]}",
    )
    assert view.report == {
        "valid": True,
        "problems": [],
        "format": "csv",
        "rows": 40,
        "columns": 5,
        "missing_columns": [],
        "unregistered_columns": [],
        "identifier_like": {},
        "identifier_names": [],
        "rare_categories": {},
    }
    stored = ctx.data_dir / view.path
    assert stored == ctx.data_dir / "ingress" / f"{digest}.csv"
    assert stored.read_bytes() == path.read_bytes()
    assert stat.S_IMODE(stored.stat().st_mode) == 0o400
    assert not [p for p in stored.parent.iterdir() if p.name.startswith(".")], "no temp left"
    assert current_version(ctx, world) == before, "only approval changes the current version"
    last = audit.records(ctx.engine)[-1]
    assert (last.action, last.outcome, last.detail["sha256"]) == (
        "submit_dataset_version",
        "ok",
        digest,
    )


def test_a_parquet_file_is_read_too(ctx: Context, world: World, tmp_path: Path) -> None:
    view = submit(ctx, world, write(tmp_path, episodes(), "version.parquet"), label="2026-Q2")
    assert (view.state, view.version, view.report["format"]) == ("submitted", "2026-Q2", "parquet")
    assert view.report["rows"] == 40


@pytest.mark.parametrize(
    ("frame", "problem", "missing", "unregistered"),
    [
        (
            episodes().assign(shoe_size="42"),
            "columns not registered: shoe_size",
            [],
            ["shoe_size"],
        ),
        (
            episodes().drop(columns=["diagnosis"]),
            "registered columns missing: diagnosis",
            ["diagnosis"],
            [],
        ),
        (
            episodes(rows=0),
            "the file has no data rows",
            [],
            [],
        ),
    ],
)
def test_a_file_that_does_not_match_the_register_is_rejected_at_once(
    ctx: Context,
    world: World,
    tmp_path: Path,
    frame: pd.DataFrame,
    problem: str,
    missing: list[str],
    unregistered: list[str],
) -> None:
    before = current_version(ctx, world)
    view = submit(ctx, world, write(tmp_path, frame))
    assert view.state == "rejected"
    assert view.report["problems"] == [problem] and view.reason == problem
    assert (view.report["missing_columns"], view.report["unregistered_columns"]) == (
        missing,
        unregistered,
    )
    assert current_version(ctx, world) == before
    with pytest.raises(RuleViolation) as refused:  # a rejected version is never approved
        ingress.decide_version(ctx, world.custodian, view.uuid, approve=True, reason="ok")
    assert refused.value.rule == "version_state"
    assert audit_tail(ctx) == [("decide_dataset_version", "refused", "version_state")]


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        (["someone@example.org", "x@y.co.uk"], "email"),
        (["07700 900123", "+447700900124"], "phone"),
        (["943 476 5919", "9434765920"], "nhs_number_like"),
        (["SW1A 1AA", "M1 1AE"], "postcode"),
    ],
)
def test_direct_identifiers_in_an_undeclared_column_are_flagged(
    ctx: Context, world: World, tmp_path: Path, values: list[str], kind: str
) -> None:
    diagnosis = (values * 20)[:40]
    view = submit(ctx, world, write(tmp_path, episodes(diagnosis=diagnosis)))
    assert view.state == "submitted", "a flag informs the custodian; it does not reject"
    assert view.report["identifier_like"] == {"diagnosis": {kind: 40}}


def test_identifier_names_and_rare_categories_are_flagged(
    ctx: Context, world: World, tmp_path: Path
) -> None:
    datasets.register_dataset(
        ctx,
        world.custodian,
        slug="contacts",
        name="Contacts",
        source_agency="Agency",
        description="d",
        version="ee" * 32,
        custodian=world.custodian,
        permitted_purposes=["health_research"],
        variables=[
            variable("person_id", "direct_identifier"),
            variable("patient_email", "quasi_identifier"),  # mis-registered on purpose
            variable("region", "quasi_identifier"),
        ],
    )
    frame = pd.DataFrame(
        {
            "person_id": [str(i) for i in range(30)],
            "patient_email": ["withheld"] * 30,
            "region": ["North"] * 14 + ["South"] * 13 + ["Isles"] * 3,
        }
    )
    view = ingress.submit_version(ctx, world.custodian, "contacts", write(tmp_path, frame))
    assert view.report["identifier_names"] == ["patient_email"]
    assert view.report["rare_categories"] == {"region": {"categories": 3, "rare": 1}}
    assert view.report["identifier_like"] == {}


def test_only_the_datasets_custodian_approves_never_an_admin(
    ctx: Context, world: World, tmp_path: Path
) -> None:
    """Attack: an admin (and another custodian) try to approve in the custodian's place."""
    view = submit(ctx, world, write(tmp_path, episodes()))
    people.create_person(
        ctx,
        world.admin,
        email="other@example.org",
        name="Oth Custodian",
        organisation="Org",
        roles=["data_custodian", "admin"],
    )
    for intruder, error, rule in (
        (world.admin, PermissionDenied, "role"),
        ("other@example.org", RuleViolation, "custodian_only"),
        (world.researcher, PermissionDenied, "role"),
    ):
        with pytest.raises(error) as refused:
            ingress.decide_version(ctx, intruder, view.uuid, approve=True, reason="looks fine")
        assert refused.value.rule == rule
        assert audit_tail(ctx) == [("decide_dataset_version", "refused", rule)]
    assert ingress.list_versions(ctx, world.admin, DATASET)[0].state == "submitted"

    decided = ingress.decide_version(ctx, world.custodian, view.uuid, approve=True, reason="ok")
    assert (decided.state, decided.decided_by) == ("approved", world.custodian)
    assert current_version(ctx, world) == f"sha256:{view.sha256}"
    with pytest.raises(RuleViolation) as again:
        ingress.decide_version(ctx, world.custodian, view.uuid, approve=False, reason="no")
    assert again.value.rule == "version_state"


def test_submitting_is_for_the_custodian_or_an_admin(
    ctx: Context, world: World, tmp_path: Path
) -> None:
    path = write(tmp_path, episodes())
    people.create_person(
        ctx,
        world.admin,
        email="other@example.org",
        name="Oth Custodian",
        organisation="Org",
        roles=["data_custodian"],
    )
    before = counts(ctx)
    with pytest.raises(RuleViolation) as refused:
        ingress.submit_version(ctx, "other@example.org", DATASET, path)
    assert refused.value.rule == "custodian_only"
    with pytest.raises(PermissionDenied):
        ingress.submit_version(ctx, world.researcher, DATASET, path)
    assert counts(ctx) == before
    assert not (ctx.data_dir / "ingress").exists() or not any(
        (ctx.data_dir / "ingress").iterdir()
    ), "a refused submission stores nothing"
    assert ingress.submit_version(ctx, world.admin, DATASET, path).submitted_by == world.admin
    with pytest.raises(Conflict) as duplicate:
        submit(ctx, world, path)
    assert duplicate.value.rule == "duplicate_version"


@pytest.mark.parametrize(
    ("name", "content", "rule"),
    [("version.xlsx", b"PK", "unsupported_format"), ("absent.csv", None, "no_such_file")],
)
def test_bad_input_is_one_clear_error_and_changes_nothing(
    ctx: Context, world: World, tmp_path: Path, name: str, content: bytes | None, rule: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    before = counts(ctx)
    with pytest.raises(InvalidInput) as error:
        submit(ctx, world, path)
    assert error.value.rule == rule and "\n" not in str(error.value)
    assert counts(ctx) == before


def _leaky_files(tmp_path: Path) -> dict[str, Path]:
    """Files that carry SECRET where validation, the scan or the parser will trip."""
    files = {}
    valid = episodes(diagnosis=[SECRET] * 3 + ["I21"] * 37)  # a rare category: flagged
    files["valid"] = write(tmp_path, valid, "valid.csv")
    extra = episodes().assign(notes=[SECRET] * 40)  # an unregistered column
    files["unregistered"] = write(tmp_path, extra, "unregistered.csv")
    broken = tmp_path / "uploads" / "broken.csv"
    lines = write(tmp_path, episodes(), "ok.csv").read_text().splitlines()
    lines.insert(3, f'9434765999,18-39,AB12,"{SECRET},7')  # an unbalanced quote
    broken.write_text("\n".join(lines) + "\n")
    files["broken"] = broken
    undecodable = tmp_path / "uploads" / "undecodable.csv"
    undecodable.write_bytes(broken.read_bytes().replace(b"AB12", b"\xff\xfe", 1))
    files["undecodable"] = undecodable
    return files


def test_no_data_value_reaches_the_report_an_error_or_the_audit_log(
    ctx: Context, world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Attack: a distinctive value in the file is looked for everywhere the ingress writes."""
    seen: list[str] = []
    for path in _leaky_files(tmp_path).values():
        try:
            view = submit(ctx, world, path)
        except ControlError as error:
            seen.append(str(error))
            continue
        seen += [json.dumps(view.report), view.reason]
        for approve in (True, False):
            try:
                ingress.decide_version(ctx, world.custodian, view.uuid, approve=approve, reason="r")
            except ControlError as error:
                seen.append(str(error))
    states = {v.state for v in ingress.list_versions(ctx, world.admin, DATASET)}
    assert states == {"approved", "rejected"}, "each path above was taken"
    views = ingress.list_versions(ctx, world.admin, DATASET)
    assert any(v.report.get("rare_categories") for v in views)
    assert any("could not be read" in p for v in views for p in v.report["problems"])
    seen += [json.dumps(v.report) + v.reason for v in views]
    seen += [json.dumps(e.to_dict()) for e in audit.records(ctx.engine)]
    seen.append(capsys.readouterr().out)
    for text_ in seen:
        for fragment in (SECRET, "Zephyrine", "Quixall"):
            assert fragment not in text_


def test_versions_are_listed_for_custodians_and_admins_only(
    ctx: Context, world: World, tmp_path: Path
) -> None:
    submit(ctx, world, write(tmp_path, episodes()))
    assert len(ingress.list_versions(ctx, world.custodian, DATASET)) == 1
    with pytest.raises(PermissionDenied):
        ingress.list_versions(ctx, world.researcher, DATASET)


# ----- linkage uses approved versions only --------------------------------------------------


def test_linkage_refuses_a_version_that_is_not_approved(
    ctx: Context, world: World, tmp_path: Path
) -> None:
    """Attack: link a submitted (not approved) version, by slug and by its file."""
    path = write(tmp_path, episodes())
    view = submit(ctx, world, path)
    stored = ctx.data_dir / view.path
    for spec, rule in (
        (f"dataset:{DATASET}", "no_approved_version"),
        (str(stored), "unapproved_input"),
        (str(path), "unapproved_input"),
    ):
        with pytest.raises(RuleViolation) as refused:
            resolve_linkage_inputs(ctx, world.admin, [spec])
        assert refused.value.rule == rule
        assert audit_tail(ctx) == [("use_dataset_version", "refused", rule)]
    with transaction(ctx.engine, readonly=True) as session, pytest.raises(RuleViolation):
        approved_version_path(session, ctx.data_dir, DATASET)

    ingress.decide_version(ctx, world.custodian, view.uuid, approve=True, reason="ok")
    resolved = resolve_linkage_inputs(ctx, world.admin, [f"dataset:{DATASET}", str(path)])
    assert [(r.dataset, r.sha256) for r in resolved] == [(DATASET, view.sha256)] * 2
    assert resolved[0].path == stored
    last = audit.records(ctx.engine)[-1]
    assert last.action == "use_dataset_version"
    assert [i["sha256"] for i in last.detail["inputs"]] == [view.sha256] * 2
    with pytest.raises(PermissionDenied):  # the custodian approves; the linkage unit links
        resolve_linkage_inputs(ctx, world.custodian, [f"dataset:{DATASET}"])


def test_linkage_refuses_a_stored_version_changed_after_approval(
    ctx: Context, world: World, tmp_path: Path
) -> None:
    view = submit(ctx, world, write(tmp_path, episodes()))
    ingress.decide_version(ctx, world.custodian, view.uuid, approve=True, reason="ok")
    stored = ctx.data_dir / view.path
    os.chmod(stored, 0o600)
    stored.write_text(stored.read_text().replace("I21", "I22"))
    with pytest.raises(RuleViolation) as refused:
        resolve_linkage_inputs(ctx, world.admin, [f"dataset:{DATASET}"])
    assert refused.value.rule == "version_tampered"


def test_the_newest_approved_version_is_the_one_used(
    ctx: Context, world: World, tmp_path: Path
) -> None:
    first = submit(ctx, world, write(tmp_path, episodes(), "a.csv"), label="v1")
    second = submit(ctx, world, write(tmp_path, episodes(rows=60), "b.csv"), label="v2")
    ingress.decide_version(ctx, world.custodian, first.uuid, approve=True, reason="ok")
    ctx.clock.advance(minutes=5)  # type: ignore[attr-defined]
    ingress.decide_version(ctx, world.custodian, second.uuid, approve=True, reason="ok")
    with transaction(ctx.engine, readonly=True) as session:
        assert approved_version_path(session, ctx.data_dir, DATASET) == ctx.data_dir / second.path
    assert current_version(ctx, world) == f"sha256:{second.sha256}"


# ----- the new actions' permission matrix ----------------------------------------------------

ROLES = [*(r.value for r in Role), "none"]


def _call(action: Action, ctx: Context, world: World, actor: str, tmp_path: Path) -> object:
    path = write(tmp_path, episodes())
    if action is Action.SUBMIT_DATASET_VERSION:
        return ingress.submit_version(ctx, actor, DATASET, path)
    if action is Action.LIST_DATASET_VERSIONS:
        return ingress.list_versions(ctx, actor, DATASET)
    view = ingress.submit_version(ctx, world.custodian, DATASET, path)
    if action is Action.DECIDE_DATASET_VERSION:
        return ingress.decide_version(ctx, actor, view.uuid, approve=True, reason="ok")
    ingress.decide_version(ctx, world.custodian, view.uuid, approve=True, reason="ok")
    return resolve_linkage_inputs(ctx, actor, [f"dataset:{DATASET}"])


MATRIX: list[Action] = [
    Action.SUBMIT_DATASET_VERSION,
    Action.LIST_DATASET_VERSIONS,
    Action.DECIDE_DATASET_VERSION,
    Action.USE_DATASET_VERSION,
]


@pytest.mark.parametrize("action", MATRIX, ids=str)
@pytest.mark.parametrize("role", ROLES)
def test_ingress_permission_matrix(
    ctx: Context, world: World, tmp_path: Path, role: str, action: Action
) -> None:
    actor = world.by_role(role)
    if role in PERMISSIONS[action]:
        before = audit.records(ctx.engine)[-1].seq
        _call(action, ctx, world, actor, tmp_path)
        mine = [e for e in audit.records(ctx.engine, after_seq=before) if e.actor == actor]
        if action is Action.LIST_DATASET_VERSIONS:  # a read: audited only when refused
            assert mine == []
        else:
            assert [(e.action, e.outcome) for e in mine][-1] == (action.value, "ok")
    else:
        with pytest.raises(PermissionDenied) as refused:
            _call(action, ctx, world, actor, tmp_path)
        assert refused.value.rule == "role"
        assert audit_tail(ctx) == [(action.value, "refused", "role")]


# ----- the command line ----------------------------------------------------------------------


@pytest.fixture
def cli(ctx: Context, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Context:
    for name in list(os.environ):
        if name.startswith("ENCLAVE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ENCLAVE_DATA_DIR", str(ctx.data_dir))
    monkeypatch.setenv("ENCLAVE_DATABASE_URL", database_url)
    return ctx


Run = Callable[[str], tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    def go(command: str) -> tuple[int, str, str]:
        code = main(shlex.split(command))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return go


def test_cli_submit_list_decide(cli: Context, world: World, tmp_path: Path, run: Run) -> None:
    good, bad = write(tmp_path, episodes()), write(tmp_path, episodes().assign(x="1"), "b.csv")
    c = f"--as {world.custodian}"
    code, out, err = run(f"admin submit-dataset-version {c} {DATASET} {good}")
    assert code == 0, err
    uuid = out.split("\t")[1]
    code, out, _ = run(f"admin submit-dataset-version {c} {DATASET} {bad}")
    assert code == 1 and "problem\tcolumns not registered: x" in out
    code, out, _ = run(f"admin dataset-versions {c} {DATASET} --json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["state"] for r in rows] == ["submitted", "rejected"]
    decide = f"admin decide-dataset-version {uuid} --reason ok"
    code, _, err = run(f"{decide} --as {world.admin} --approve")
    assert code == 2 and err.rstrip().endswith("[role]")
    code, _, err = run(f"{decide} {c} --approve --reject")
    assert code == 2 and "exactly one" in err
    code, out, err = run(f"{decide} {c} --approve")
    assert code == 0 and out.rstrip().endswith("approved"), err


FEBRL_VARIABLES = (
    "rec_id",
    "given_name",
    "surname",
    "street_number",
    "address_1",
    "address_2",
    "suburb",
    "postcode",
    "state",
    "date_of_birth",
    "soc_sec_id",
)


def test_link_files_links_approved_versions_and_refuses_others(
    cli: Context, world: World, tmp_path: Path, run: Run
) -> None:
    from tests.enclave.linkage.helpers import febrl_subset

    a, b = febrl_subset(0, 200, 50)
    b = b.assign(
        date_of_birth=b["date_of_birth"].where(
            pd.to_datetime(b["date_of_birth"], format="%Y%m%d", errors="coerce").notna(), ""
        )
    )
    views = {}
    for slug, frame in (("agency-a", a), ("agency-b", b)):
        datasets.register_dataset(
            cli,
            world.admin,
            slug=slug,
            name=slug,
            source_agency=slug,
            description="people",
            version="ab" * 32,
            custodian=world.custodian,
            permitted_purposes=["health_research"],
            variables=[variable(v, "direct_identifier") for v in FEBRL_VARIABLES],
        )
        path = write(tmp_path, frame[list(FEBRL_VARIABLES)], f"{slug}.csv")
        views[slug] = ingress.submit_version(cli, world.custodian, slug, path)
    out = tmp_path / "links.csv"
    link = f"link files dataset:agency-a dataset:agency-b --id-column rec_id --out {out} --quiet"
    code, _, err = run(f"{link} --as {world.admin}")
    assert code == 2 and err.rstrip().endswith("[no_approved_version]"), err
    assert not out.exists()
    code, _, err = run(link)
    assert code == 2 and "--as EMAIL is required" in err
    raw = tmp_path / "uploads" / "agency-a.csv"
    code, _, err = run(
        f"link files {raw} dataset:agency-b --id-column rec_id --out {out} --as {world.admin}"
    )
    assert code == 2 and err.rstrip().endswith("[unapproved_input]")
    for view in views.values():
        ingress.decide_version(cli, world.custodian, view.uuid, approve=True, reason="ok")
    code, _, err = run(f"{link} --as {world.admin}")
    assert code == 0, err
    links = pd.read_csv(out, dtype=str)
    assert set(links["source"]) == {"agency-a", "agency-b"} and len(links) == len(a) + len(b)
    assert not (tmp_path / ".links.csv.inputs").exists()
