"""``enclave admin`` and ``enclave audit`` end to end, through ``main(argv)`` and one real
subprocess, on every database backend."""

from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import text

from enclave.cli import main
from enclave.control.context import open_context
from enclave.control.db import make_engine
from enclave.control.service import access, people, tokens
from enclave.settings import Settings
from tests.enclave.control.dbfixtures import BACKENDS, temporary_database
from tests.enclave.control.fakehub import TOKEN, fake_hub

ADMIN, CUSTODIAN, RESEARCHER = "ada@example.org", "cas@example.org", "rae@example.org"


@pytest.fixture(params=BACKENDS)
def env(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """Point the CLI at a fresh database and data directory; yield the data directory."""
    for name in list(os.environ):
        if name.startswith("ENCLAVE_"):
            monkeypatch.delenv(name)
    data = tmp_path / "data"
    with temporary_database(request.param, tmp_path) as url:
        monkeypatch.setenv("ENCLAVE_DATA_DIR", str(data))
        monkeypatch.setenv("ENCLAVE_DATABASE_URL", url)
        yield data


def run(capsys: pytest.CaptureFixture[str], command: str) -> tuple[int, str, str]:
    """Run ``enclave <command>`` (split like a shell would) and capture its output."""
    code = main(shlex.split(command))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def ok(capsys: pytest.CaptureFixture[str], command: str) -> str:
    code, out, err = run(capsys, command)
    assert code == 0, err
    return out


def refused(capsys: pytest.CaptureFixture[str], rule: str, command: str) -> str:
    code, out, err = run(capsys, command)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("enclave: error: ")
    assert err.rstrip().endswith(f"[{rule}]"), err
    return err


A = f"--as {ADMIN}"


def provision(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> str:
    """Set up an approved project with a member and a requested grant; return the grant id."""
    ok(capsys, "admin init")
    ok(capsys, f"admin bootstrap --email {ADMIN} --name Ada --organisation Enclave")
    for email, role in ((CUSTODIAN, "data_custodian"), (RESEARCHER, "researcher")):
        ok(
            capsys,
            f"admin create-person {A} --email {email} --name X --organisation O --role {role}",
        )
    ok(
        capsys,
        f"admin accredit {A} {RESEARCHER} --scheme 'Safe Researcher' --reference SR-1 "
        "--issued 2025-01-01 --expires 2030-01-01",
    )
    ok(
        capsys,
        f"admin create-project {A} --slug beds --title 'Hospital beds' --lay-summary 'Stays' "
        "--public-benefit 'Better planning' --organisation Uni --purpose health_research "
        "--start 2025-01-01 --end 2029-12-31 --legal-basis 'Statistics Act' --ethics-ref E1 "
        """--dsa-ref D1 --disclosure '{"threshold": 15}'""",
    )
    variables = tmp_path / "variables.json"
    specs = [
        {"name": "nhs_number", "sensitivity": "direct_identifier"},
        {"name": "age_band", "sensitivity": "quasi_identifier"},
        {"name": "los", "sensitivity": "other", "description": "length of stay"},
    ]
    variables.write_text(json.dumps(specs))
    ok(
        capsys,
        f"admin register-dataset {A} --slug hes --name 'Hospital Episodes' "
        f"--agency 'Health Agency' --description Episodes --version-of {variables} "
        f"--custodian {CUSTODIAN} --purpose health_research --variables {variables}",
    )
    ok(capsys, f"admin approve-project {A} beds")
    ok(
        capsys,
        f"admin add-member {A} --project beds --email {RESEARCHER} --role researcher "
        "--expires 2029-01-01",
    )
    out = ok(
        capsys,
        f"admin request-grant {A} --project beds --dataset hes --variable age_band,los "
        "--expires 2028-12-31",
    )
    return out.split("\t")[1]


def test_provisioning_end_to_end(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grant = provision(capsys, tmp_path)
    assert ok(capsys, f"admin approve-grant --as {CUSTODIAN} {grant}").endswith("approved\n")
    ok(capsys, f"admin activate-project {A} beds")

    people = ok(capsys, f"admin list-people {A} --json").splitlines()
    assert sorted(json.loads(line)["email"] for line in people) == [ADMIN, CUSTODIAN, RESEARCHER]
    projects = ok(capsys, f"admin list-projects {A}").splitlines()
    assert projects[0].split("\t")[:2] == ["slug", "state"]
    assert projects[1].split("\t")[:3] == ["beds", "active", "health_research"]
    listed = ok(capsys, f"admin list-datasets {A} --json")
    assert json.loads(listed)["variables"].startswith("nhs_number:direct_identifier")
    grants = ok(capsys, f"admin list-grants {A} --project beds --json")
    assert json.loads(grants)["state"] == "approved"

    # a custodian's token needs the admin's authenticator code and lives at most 12 hours
    refused(capsys, "mfa_required", f"admin issue-token {A} --for {CUSTODIAN} --label ci")
    enrolment = ok(capsys, f"admin enrol-totp {A} {ADMIN}")
    secret = enrolment.splitlines()[0].split("\t")[1]
    code = pyotp.TOTP(secret).now()
    refused(
        capsys,
        "privileged_token_lifetime",
        f"admin issue-token {A} --for {CUSTODIAN} --label ci --days 30 --totp {code}",
    )
    issue = f"admin issue-token {A} --for {CUSTODIAN} --label ci --hours 2 --totp {code}"
    token = ok(capsys, issue).strip()
    ctx = open_context(Settings.load())
    try:
        assert tokens.verify_token(ctx, token).email == CUSTODIAN
        decision = access.authorize_session(ctx, email=RESEARCHER, project="beds")
        assert decision.allowed and decision.data[0].variables == ("age_band", "los")
        assert decision.disclosure == {"threshold": 15}
    finally:
        ctx.close()

    ok(capsys, f"admin suspend-project {A} beds --reason incident")
    (env / "projects" / "beds" / "home").mkdir(parents=True)
    (env / "keys").mkdir(parents=True)
    (env / "keys" / "beds.key").write_text("k")
    closed = ok(capsys, f"admin close-project {A} beds --reason done")
    assert "revoked grants\t1" in closed and "destroyed keys\tbeds.key" in closed
    assert not (env / "keys" / "beds.key").exists()

    assert ok(capsys, "audit verify").startswith("audit chain intact: ")
    exported = tmp_path / "audit.jsonl"
    code, _out, err = run(capsys, f"audit export --out {exported}")
    assert code == 0 and "intact" in err
    events = [json.loads(line) for line in exported.read_text().splitlines()]
    actions = [e["action"] for e in events]
    assert actions[:2] == ["bootstrap_admin", "create_person"]
    assert {"approve_grant", "start_session", "issue_token", "close_project"} <= set(actions)


def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    provision(capsys, tmp_path)
    people, grants = ok(capsys, f"admin list-people {A}"), ok(capsys, f"admin list-grants {A}")
    create = f"admin create-person {A} --name R --organisation O --email"
    refused(capsys, "duplicate_email", f"{create} {RESEARCHER}")
    refused(capsys, "invalid_email", f"{create} not-an-address")
    request = f"admin request-grant {A} --project beds --expires 2028-01-01"
    refused(capsys, "unknown_dataset", f"{request} --dataset nope --variable los")
    refused(capsys, "direct_identifier", f"{request} --dataset hes --variable nhs_number")
    refused(capsys, "unknown_project", f"{request} --dataset hes --variable los --project x")
    refused(
        capsys,
        "invalid_date",
        f"admin accredit {A} {RESEARCHER} --scheme S --reference R --issued 2025-02-30 "
        "--expires 2026-01-01",
    )
    refused(capsys, "unknown_actor", "admin list-people --as ghost@example.org")
    refused(capsys, "role", f"admin approve-grant {A} some-grant")
    refused(
        capsys, "disclosure_tighten_only", f"""admin set-disclosure {A} beds '{{"threshold": 2}}'"""
    )
    refused(capsys, "invalid_input", f"admin set-disclosure {A} beds '[1]'")
    assert ok(capsys, f"admin list-people {A}") == people
    assert ok(capsys, f"admin list-grants {A}") == grants


def test_purpose_mismatch_through_the_cli(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    provision(capsys, tmp_path)
    ok(
        capsys,
        f"admin create-project {A} --slug edu --title T --lay-summary L --public-benefit B "
        "--organisation O --purpose education_research --start 2025-01-01 --end 2029-01-01 "
        "--legal-basis A --ethics-ref E --dsa-ref D",
    )
    ok(capsys, f"admin approve-project {A} edu")
    err = refused(
        capsys,
        "purpose_binding",
        f"admin request-grant {A} --project edu --dataset hes --variable los --expires 2028-01-01",
    )
    assert "education_research" in err


def test_uninitialised_database_says_how_to_fix_it(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = refused(capsys, "schema", f"admin list-people {A}")
    assert "enclave admin init" in err


def test_credentials_from_stdin_and_totp_enrolment(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    provision(capsys, tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO("a very long password\n"))
    ok(capsys, f"admin set-password {A} {RESEARCHER}")
    enrolled = ok(capsys, f"admin enrol-totp {A} {RESEARCHER}").splitlines()
    secret = enrolled[0].split("\t")[1]
    assert enrolled[1].startswith("totp uri\totpauth://totp/")
    ctx = open_context(Settings.load())
    try:
        code = pyotp.TOTP(secret).now()
        person = people.authenticate(ctx, RESEARCHER, "a very long password", code)
        assert person.email == RESEARCHER
    finally:
        ctx.close()


def test_membership_changes_mirror_to_the_hub(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    grant = provision(capsys, tmp_path)
    ok(capsys, f"admin approve-grant --as {CUSTODIAN} {grant}")
    with fake_hub() as (url, hub):
        monkeypatch.setenv("ENCLAVE_HUB_URL", url)
        monkeypatch.setenv("ENCLAVE_HUB_API_TOKEN", TOKEN)
        ok(capsys, f"admin activate-project {A} beds")
        assert hub.groups == {"project-beds": {"rae"}}
        ok(capsys, f"admin suspend-project {A} beds --reason incident")
        assert hub.groups == {}
    monkeypatch.setenv("ENCLAVE_HUB_URL", "http://127.0.0.1:9/hub/api")
    code, _out, err = run(capsys, f"admin activate-project {A} beds")
    assert code == 0 and "warning: hub not updated" in err


def test_audit_verify_names_the_tampered_event(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    provision(capsys, tmp_path)
    engine = make_engine(os.environ["ENCLAVE_DATABASE_URL"])
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(text("DROP TRIGGER audit_events_no_update"))
        else:
            connection.execute(text("DROP TRIGGER audit_events_no_change ON audit_events"))
        connection.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 4"))
    engine.dispose()
    code, out, err = run(capsys, "audit verify")
    assert code == 1 and out == ""
    assert err.strip() == (
        "enclave: audit chain broken at event 4: its content does not match its hash (edited)"
    )


def test_the_installed_entry_point_runs(env: Path) -> None:
    """The console script is wired to the same main: an uninitialised database is one line
    on stderr and exit code 2."""
    enclave = Path(sys.executable).with_name("enclave")
    done = subprocess.run(
        [str(enclave), "admin", "list-people", "--as", ADMIN],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("enclave: error: the database schema is at nothing")
    assert done.stderr.count("\n") == 1 and done.stderr.rstrip().endswith("[schema]")
