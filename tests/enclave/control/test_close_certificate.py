"""The governed close (SATRE 1.4.04, 3.1.10): the project's audit events exported beside the
workspace archive, and a signed deletion certificate that lists the hash of everything
deleted, archived or destroyed, verifiable offline and broken by any change."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shlex
import stat
from collections.abc import Sequence
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from enclave.cli import main
from enclave.control import audit
from enclave.control.certificates import (
    key_id,
    load_public_key,
    public_key_pem,
    signing_key_path,
)
from enclave.control.context import Context
from enclave.control.db import transaction
from enclave.control.errors import ControlError, NotFound, PermissionDenied
from enclave.control.service import certificates, grants, projects
from enclave.control.service.certificates import check_certificate
from enclave.control.service.session_stop import Server
from tests.enclave.control.factories import World, audit_tail, make_project

EXTRACT = b"nhs_number,age\n9434765919,40\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def furnish(ctx: Context, slug: str = "p1") -> dict[str, bytes]:
    """A workspace with work, an extract and key files; returns path -> content."""
    files = {
        f"projects/{slug}/home/rae/analysis.py": b"print(1)\n",
        f"projects/{slug}/outbox/table.csv": b"band,n\nA,12\n",
        f"projects/{slug}/data/extract.csv": EXTRACT,
        f"keys/{slug}.key": b'{"salt": "00ff", "version": 1}',
    }
    for name, content in files.items():
        path = ctx.data_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return files


def set_column(ctx: Context, column: str, value: str) -> None:
    """Tamper with the stored certificate as someone with database access could."""
    with transaction(ctx.engine) as session:
        session.execute(text(f"UPDATE deletion_certificates SET {column} = :v"), {"v": value})


def flip(value: str, at: int) -> str:
    """``value`` with the character at ``at`` changed."""
    replacement = "A" if value[at] != "A" else "B"
    return value[:at] + replacement + value[at + 1 :]


def test_close_certifies_the_hash_of_everything_removed(ctx: Context, world: World) -> None:
    make_project(ctx, world, "p1", "active")
    files = furnish(ctx)
    head_before = audit.records(ctx.engine)[-1]

    report = projects.close_project(ctx, world.admin, "p1", "study finished")

    view = certificates.get_certificate(ctx, world.admin, "p1")
    body = view.fields
    assert view.uuid == report.certificate == body["certificate"]
    assert (body["project"], body["closed_by"], body["reason"]) == (
        "p1",
        world.admin,
        "study finished",
    )
    assert body["closed_at"] == audit.format_time(ctx.now())
    listed = {item["path"]: item for item in body["items"]}
    assert set(listed) == set(files)
    for name, content in files.items():
        assert (listed[name]["size"], listed[name]["sha256"]) == (len(content), sha(content))
        assert not (ctx.data_dir / name).exists(), f"{name} must be gone"
    assert listed["projects/p1/data/extract.csv"]["disposition"] == "deleted"
    assert listed["projects/p1/home/rae/analysis.py"]["disposition"] == "archived"
    assert listed["keys/p1.key"]["disposition"] == "destroyed"
    assert body["keys_destroyed"] == ["p1.key"]
    archive = ctx.data_dir / body["archive"]["path"]
    assert sha(archive.read_bytes()) == body["archive"]["sha256"] == report.archive_sha256
    # the audit export: the project's events up to the certified head, as stored
    export = ctx.data_dir / body["audit_export"]["path"]
    assert export.parent == archive.parent
    assert sha(export.read_bytes()) == body["audit_export"]["sha256"]
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    expected = audit.records(ctx.engine, project="p1")[:-1]  # all but the close itself
    assert [line["hash"] for line in lines] == [e.hash for e in expected]
    assert body["audit_export"]["events"] == len(expected) > 3
    assert body["audit_head"] == {"seq": head_before.seq, "hash": head_before.hash}
    # the chain records the certificate
    close = audit.records(ctx.engine)[-1]
    assert close.action == "close_project" and close.detail["certificate"] == view.uuid
    assert close.detail["certificate_sha256"] == sha(view.body.encode())
    check = certificates.verify_certificate(ctx, world.admin, "p1")
    assert check.ok and check.signature_ok and check.audit_ok, check.problems


def test_signing_key_is_private_and_identified_by_its_public_half(
    ctx: Context, world: World
) -> None:
    make_project(ctx, world, "p1", "active")
    projects.close_project(ctx, world.admin, "p1", "finished")
    path = signing_key_path(ctx.data_dir)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    pem = certificates.public_key(ctx, world.admin)
    public = load_public_key(pem)
    view = certificates.get_certificate(ctx, world.admin, "p1")
    assert view.key_id == view.fields["key_id"] == key_id(public)
    assert len(view.key_id) == 16
    assert "PRIVATE" not in pem
    # offline: the exported key and the stored text alone verify it
    assert check_certificate(view, pem, view.fields["audit_head"]["hash"]).ok


@pytest.mark.parametrize(
    ("column", "position"),
    [("body", 10), ("body", -3), ("signature", 5), ("signature", 40)],
)
def test_altering_one_character_breaks_verification(
    ctx: Context, world: World, column: str, position: int
) -> None:
    make_project(ctx, world, "p1", "active")
    furnish(ctx)
    projects.close_project(ctx, world.admin, "p1", "finished")
    original = certificates.get_certificate(ctx, world.admin, "p1")
    value = getattr(original, column)
    set_column(ctx, column, flip(value, position % len(value)))
    check = certificates.verify_certificate(ctx, world.admin, "p1")
    assert not check.ok and not check.signature_ok
    assert "the signature does not match the certificate body" in check.problems


def test_forged_item_hash_fails_and_another_key_fails(ctx: Context, world: World) -> None:
    """The realistic forgeries: hide a file by editing its hash in the body, or re-sign the
    edited body with a key of one's own."""
    make_project(ctx, world, "p1", "active")
    furnish(ctx)
    projects.close_project(ctx, world.admin, "p1", "finished")
    view = certificates.get_certificate(ctx, world.admin, "p1")
    fields = view.fields
    fields["items"] = [i for i in fields["items"] if "extract" not in i["path"]]
    forged = audit.canonical_json(fields)
    set_column(ctx, "body", forged)
    assert not certificates.verify_certificate(ctx, world.admin, "p1").signature_ok
    own = Ed25519PrivateKey.generate()
    own_pem = public_key_pem(own.public_key())
    set_column(ctx, "signature", base64.b64encode(own.sign(forged.encode())).decode())
    assert not certificates.verify_certificate(ctx, world.admin, "p1").ok
    # the forger's own key accepts the signature, but the body names the enclave's key
    check = certificates.verify_certificate(ctx, world.admin, "p1", public_pem=own_pem)
    assert check.signature_ok and not check.ok
    assert check.problems == (
        f"the certificate names key {view.key_id}, not the key {key_id(own.public_key())}",
    )


def test_certified_audit_head_must_still_be_in_the_chain(ctx: Context, world: World) -> None:
    make_project(ctx, world, "p1", "active")
    projects.close_project(ctx, world.admin, "p1", "finished")
    view = certificates.get_certificate(ctx, world.admin, "p1")
    pem = certificates.public_key(ctx, world.admin)
    assert check_certificate(view, pem, view.fields["audit_head"]["hash"]).ok
    rewritten = check_certificate(view, pem, "f" * 64)
    assert rewritten.signature_ok and not rewritten.audit_ok and not rewritten.ok
    assert not check_certificate(view, pem, None).ok


class FailingDestroyer:
    def destroy(self, project_slug: str) -> list[str]:
        raise OSError("key store unavailable")


def _disk_state(ctx: Context) -> dict[str, bytes]:
    return {
        p.relative_to(ctx.data_dir).as_posix(): p.read_bytes()
        for p in sorted(ctx.data_dir.rglob("*"))
        if p.is_file() and p.name != "certificate-signing.pem"
    }


def _certificate_count(ctx: Context) -> int:
    with transaction(ctx.engine, readonly=True) as session:
        return int(session.execute(text("SELECT count(*) FROM deletion_certificates")).scalar_one())


def test_a_failed_disk_step_leaves_no_certificate_and_the_project_open(
    ctx: Context, world: World
) -> None:
    make_project(ctx, world, "p1", "active")
    furnish(ctx)
    before = _disk_state(ctx)
    broken = Context(ctx.engine, ctx.data_dir, ctx.clock, key_destroyer=FailingDestroyer())
    with pytest.raises(ControlError, match="key store unavailable") as error:
        projects.close_project(broken, world.admin, "p1", "finished")
    assert error.value.rule == "close_hooks"
    assert audit_tail(ctx) == [("close_project", "refused", "close_hooks")]
    assert projects.get_project(ctx, world.admin, "p1").state == "active"
    assert _certificate_count(ctx) == 0
    with pytest.raises(NotFound):
        certificates.get_certificate(ctx, world.admin, "p1")
    # nothing on disk changed: no stray archive or export, the workspace and key intact
    assert _disk_state(ctx) == before
    # a retry with a working hook closes and certifies everything
    projects.close_project(ctx, world.admin, "p1", "finished")
    assert len(certificates.get_certificate(ctx, world.admin, "p1").fields["items"]) == 4
    assert _certificate_count(ctx) == 1


def test_an_unwritable_archive_leaves_everything_as_it_was(ctx: Context, world: World) -> None:
    make_project(ctx, world, "p1", "active")
    furnish(ctx)
    (ctx.data_dir / "archive").write_text("a file where the archive directory should be")
    before = _disk_state(ctx)
    with pytest.raises(ControlError) as error:
        projects.close_project(ctx, world.admin, "p1", "finished")
    assert error.value.rule == "close_hooks"
    assert projects.get_project(ctx, world.admin, "p1").state == "active"
    assert _certificate_count(ctx) == 0 and _disk_state(ctx) == before


def test_a_readable_signing_key_is_refused_before_anything_happens(
    ctx: Context, world: World
) -> None:
    make_project(ctx, world, "p1", "active")
    make_project(ctx, world, "p2", "active", member=False)
    projects.close_project(ctx, world.admin, "p2", "finished")  # creates the key
    os.chmod(signing_key_path(ctx.data_dir), 0o644)
    furnish(ctx)
    before = _disk_state(ctx)
    with pytest.raises(ControlError, match="owner only") as error:
        projects.close_project(ctx, world.admin, "p1", "finished")
    assert error.value.rule == "close_hooks"
    assert _disk_state(ctx) == before
    assert projects.get_project(ctx, world.admin, "p1").state == "active"


def test_no_project_slug_can_destroy_the_signing_key(ctx: Context, world: World) -> None:
    """Attack: a project named after the signing key file, closed, must not take the key."""
    make_project(ctx, world, "p1", "active")
    projects.close_project(ctx, world.admin, "p1", "finished")
    key_before = signing_key_path(ctx.data_dir).read_bytes()
    make_project(ctx, world, "certificate-signing", "active", member=False)
    report = projects.close_project(ctx, world.admin, "certificate-signing", "finished")
    assert report.keys_destroyed == ()
    assert signing_key_path(ctx.data_dir).read_bytes() == key_before
    assert certificates.verify_certificate(ctx, world.admin, "p1").ok


class RecordingStopper:
    def __init__(self) -> None:
        self.calls: list[tuple[str | None, str | None]] = []

    def stop_sessions(
        self, *, username: str | None = None, project: str | None = None
    ) -> Sequence[Server]:
        self.calls.append((username, project))
        return [Server("rae", project or "")]


def test_close_stops_the_projects_running_sessions(ctx: Context, world: World) -> None:
    make_project(ctx, world, "p1", "active")
    stopper = RecordingStopper()
    report = projects.close_project(ctx, world.admin, "p1", "finished", stopper=stopper)
    assert stopper.calls == [(None, "p1")]
    assert report.sessions is not None and report.sessions.stopped == ("rae/p1",)
    # no stopper (no hub here): nothing attempted, the access enforcer stops them later
    make_project(ctx, world, "p2", "active", member=False)
    unattended = projects.close_project(ctx, world.admin, "p2", "finished").sessions
    assert unattended is not None and not unattended.attempted


def test_who_may_read_a_certificate(ctx: Context, world: World) -> None:
    make_project(ctx, world, "p1", "active")  # holds a grant of the custodian's dataset
    make_project(ctx, world, "p2", "active", grant=None)
    for slug in ("p1", "p2"):
        projects.close_project(ctx, world.admin, slug, "finished")
    assert certificates.get_certificate(ctx, world.custodian, "p1").project == "p1"
    assert grants.list_grants(ctx, world.admin, project="p2") == []
    with pytest.raises(NotFound) as hidden:  # not their data: as if there were none
        certificates.get_certificate(ctx, world.custodian, "p2")
    assert hidden.value.rule == "no_certificate"
    for outsider in (world.researcher, world.checker, world.client, world.nobody):
        with pytest.raises(PermissionDenied) as refused:
            certificates.get_certificate(ctx, outsider, "p1")
        assert refused.value.rule == "role"
        assert audit_tail(ctx) == [("view_certificate", "refused", "role")]
    with pytest.raises(PermissionDenied):
        certificates.public_key(ctx, world.researcher)


def test_a_project_closed_without_workspace_is_certified_too(ctx: Context, world: World) -> None:
    make_project(ctx, world, "p1", "active")
    projects.close_project(ctx, world.admin, "p1", "finished")
    body = certificates.get_certificate(ctx, world.admin, "p1").fields
    assert body["items"] == [] and body["archive"] is None and body["keys_destroyed"] == []
    assert body["audit_export"]["events"] > 0


@pytest.fixture
def cli(ctx: Context, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Context:
    """Point ``enclave`` at the test's database and data directory."""
    for name in list(os.environ):
        if name.startswith("ENCLAVE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ENCLAVE_DATA_DIR", str(ctx.data_dir))
    monkeypatch.setenv("ENCLAVE_DATABASE_URL", database_url)
    return ctx


def run(capsys: pytest.CaptureFixture[str], command: str) -> tuple[int, str, str]:
    code = main(shlex.split(command))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_prints_and_verifies_offline(
    cli: Context, world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_project(cli, world, "p1", "active")
    furnish(cli)
    code, out, err = run(capsys, f"admin close-project --as {world.admin} p1 --reason done")
    assert code == 0, err
    assert "deletion certificate" in out
    code, pem, err = run(capsys, f"admin certificate-public-key --as {world.admin}")
    assert code == 0 and pem.startswith("-----BEGIN PUBLIC KEY-----"), err
    exported = tmp_path / "enclave-cert.pem"
    exported.write_text(pem)
    verify = f"admin deletion-certificate --as {world.admin} p1 --json --verify"
    code, out, err = run(capsys, f"{verify} --public-key {exported}")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["verified"] is True and json.loads(shown["body"])["project"] == "p1"
    # the printed body and signature verify with nothing but the exported key
    public = load_public_key(exported.read_bytes())
    public.verify(base64.b64decode(shown["signature"]), shown["body"].encode())
    # tampered: exit 1 and the reason on stderr
    set_column(cli, "body", shown["body"].replace("p1", "p9", 1))
    code, out, err = run(capsys, verify)
    assert code == 1 and "signature does not match" in err
    other = tmp_path / "other.pem"
    other.write_text(public_key_pem(Ed25519PrivateKey.generate().public_key()))
    code, _, err = run(capsys, f"{verify} --public-key {other}")
    assert code == 1
    code, _, err = run(capsys, f"admin deletion-certificate --as {world.admin} nope")
    assert code == 2 and "[no_certificate]" in err
