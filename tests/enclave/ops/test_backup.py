"""``enclave backup create`` and ``restore`` on real SQLite and PostgreSQL: a restore into a
fresh place gives the same rows and files and an intact audit chain; a damaged backup or an
occupied target is refused with nothing changed; tampering after a restore is caught."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from enclave.cli import main
from enclave.control.db import normalise_url
from tests.enclave.ops.conftest import Place, PlaceFactory, table_rows, tree

LEFT_OUT = frozenset({"keys", "secrets", "hub", "db"})


def backup(place: Place, to: Path, *extra: str) -> Path:
    code = main(
        ["backup", "create", "--to", str(to), "--config", str(place.config), "--quiet", *extra]
    )
    assert code == 0
    made = sorted(to.iterdir())
    assert len(made) == 1 and made[0].name.startswith("enclave-backup-")
    return made[0]


def restore(backup_dir: Path, target: Place, *extra: str) -> int:
    return main(
        ["backup", "restore", "--from", str(backup_dir), "--config", str(target.config), *extra]
    )


def tamper_audit_row(url: str) -> None:
    """What an attacker with the database's owner rights could do: bypass the triggers."""
    if url.startswith("sqlite"):
        raw = sqlite3.connect(url.removeprefix("sqlite:///"))
        raw.execute("DROP TRIGGER audit_events_no_update")
        raw.execute("UPDATE audit_events SET actor = 'mallory@example.org' WHERE seq = 2")
        raw.commit()
        raw.close()
        return
    engine = create_engine(normalise_url(url))
    with engine.begin() as connection:
        connection.execute(text("SET LOCAL session_replication_role = replica"))
        connection.execute(
            text("UPDATE audit_events SET actor = 'mallory@example.org' WHERE seq = 2")
        )
    engine.dispose()


def test_restore_into_a_fresh_place_is_the_same_enclave(
    place: Place,
    backend: str,
    new_place: PlaceFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    made = backup(place, tmp_path / "backups")
    manifest = json.loads((made / "manifest.json").read_text())
    assert manifest["database_kind"] == backend
    assert manifest["revisions"]["control"] and manifest["revisions"]["queue"]
    assert set(manifest["files"]) == {"files.tar", manifest["database_file"]}
    assert manifest["includes_keys"] is False
    target = new_place(backend)
    capsys.readouterr()

    assert restore(made, target) == 0

    out = capsys.readouterr().out
    assert "audit chain intact" in out
    assert table_rows(target.database_url) == table_rows(place.database_url)
    assert table_rows(target.database_url)["audit_events"]  # not two empty databases
    assert tree(target.data_dir, LEFT_OUT) == tree(place.data_dir, LEFT_OUT)
    assert not (target.data_dir / "keys").exists()
    assert not (target.data_dir / "secrets").exists()
    assert not (target.data_dir / "hub").exists()
    assert main(["audit", "verify", "--config", str(target.config)]) == 0

    tamper_audit_row(target.database_url)
    capsys.readouterr()
    assert main(["audit", "verify", "--config", str(target.config)]) == 1
    assert "audit chain broken at event 2" in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(
    "damage",
    ["flip a byte", "delete the archive", "add a file", "edit the manifest"],
)
def test_a_damaged_backup_is_refused_and_nothing_changes(
    place: Place,
    new_place: PlaceFactory,
    tmp_path: Path,
    damage: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    made = backup(place, tmp_path / "backups")
    archive = made / "files.tar"
    if damage == "flip a byte":
        data = bytearray(archive.read_bytes())
        data[len(data) // 2] ^= 0x01
        archive.write_bytes(bytes(data))
    elif damage == "delete the archive":
        archive.unlink()
    elif damage == "add a file":
        (made / "extra.sql").write_text("DROP TABLE people;")
    else:
        manifest = json.loads((made / "manifest.json").read_text())
        manifest["files"]["files.tar"] = "0" * 64
        (made / "manifest.json").write_text(json.dumps(manifest))
    target = new_place("sqlite")
    capsys.readouterr()

    assert restore(made, target) == 2

    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("enclave backup: error: ")
    assert "files.tar" in err[-1] or "extra.sql" in err[-1]
    assert not target.data_dir.exists()
    assert not list(tmp_path.glob(".enclave-*restoring*"))
    assert main(["backup", "verify", "--from", str(made)]) == 2


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_occupied_target_is_refused_unless_forced(
    place: Place,
    backend: str,
    new_place: PlaceFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    made = backup(place, tmp_path / "backups")
    occupied = new_place(backend)
    occupied.data_dir.mkdir()
    (occupied.data_dir / "notes.txt").write_text("someone's work")
    capsys.readouterr()

    assert restore(made, occupied) == 2
    assert "is not empty" in capsys.readouterr().err
    assert sorted(p.name for p in occupied.data_dir.iterdir()) == ["notes.txt"]

    assert restore(made, occupied, "--force") == 0
    out = capsys.readouterr().out
    kept = next(occupied.data_dir.parent.glob(f"{occupied.data_dir.name}.before-restore-*"))
    assert (kept / "notes.txt").read_text() == "someone's work"
    assert str(kept) in out
    assert table_rows(occupied.database_url) == table_rows(place.database_url)

    if backend == "postgresql":  # the data directory empty, the database occupied
        occupied.data_dir.rename(tmp_path / "moved-away")
        assert restore(made, occupied) == 2
        assert "target database is not empty" in capsys.readouterr().err
        assert not occupied.data_dir.exists()
        assert restore(made, occupied, "--force") == 0
        assert table_rows(occupied.database_url) == table_rows(place.database_url)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_keys_only_when_asked_and_with_a_warning(
    place: Place,
    new_place: PlaceFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    master = tmp_path / "master.key"
    master.write_text("ab" * 32 + "\n")
    monkeypatch.setenv("ENCLAVE_LINKAGE_MASTER_KEY_FILE", str(master))
    capsys.readouterr()
    made = backup(place, tmp_path / "backups", "--include-keys")
    assert "WARNING" in capsys.readouterr().err
    assert json.loads((made / "manifest.json").read_text())["includes_keys"] is True
    assert (made / "master.key").stat().st_mode & 0o777 == 0o600
    target = new_place("sqlite")
    installed = tmp_path / "restored-master.key"

    assert restore(made, target, "--master-key-to", str(installed)) == 0

    assert installed.read_text() == master.read_text()
    assert installed.stat().st_mode & 0o777 == 0o600
    assert (target.data_dir / "keys/study.key").read_bytes() == (
        place.data_dir / "keys/study.key"
    ).read_bytes()
    assert (target.data_dir / "secrets/secret-key").exists()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_failed_backup_leaves_nothing(
    place: Place, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backups = tmp_path / "backups"
    (place.data_dir / "db" / "enclave.sqlite3").rename(tmp_path / "gone.sqlite3")
    capsys.readouterr()

    code = main(["backup", "create", "--to", str(backups), "--config", str(place.config)])

    assert code == 2
    assert "does not exist" in capsys.readouterr().err
    assert not backups.exists() or not any(backups.iterdir())
    assert not (place.data_dir / "db" / "enclave.sqlite3").exists()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_backup_refuses_a_target_inside_the_data_directory(
    place: Place, capsys: pytest.CaptureFixture[str]
) -> None:
    inside = place.data_dir / "backups"
    code = main(["backup", "create", "--to", str(inside), "--config", str(place.config)])
    assert code == 2
    assert "inside the data directory" in capsys.readouterr().err
    assert not inside.exists()
