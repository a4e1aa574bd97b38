"""The disk side of closing: archive and key destruction, idempotent and narrowly aimed."""

from __future__ import annotations

import tarfile
from datetime import UTC, datetime
from pathlib import Path

from enclave.control.workspace import FileKeyDestroyer, archive_workspace, workspace_dir

MOMENT = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def test_key_destroyer_takes_only_the_projects_keys(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    for name in ("abc", "abc.key", "abc.salt", "abc-def.key", "abcd", "xabc.key"):
        (keys / name).write_text("k")
    destroyer = FileKeyDestroyer(keys)
    assert destroyer.destroy("abc") == ["abc", "abc.key", "abc.salt"]
    assert sorted(p.name for p in keys.iterdir()) == ["abc-def.key", "abcd", "xabc.key"]
    assert destroyer.destroy("abc") == []
    assert FileKeyDestroyer(tmp_path / "absent").destroy("abc") == []


def test_key_destroyer_does_not_follow_symlinks(tmp_path: Path) -> None:
    keys, elsewhere = tmp_path / "keys", tmp_path / "precious"
    keys.mkdir()
    elsewhere.write_text("keep me")
    (keys / "abc.key").symlink_to(elsewhere)
    assert FileKeyDestroyer(keys).destroy("abc") == []
    assert elsewhere.read_text() == "keep me"


def test_archive_keeps_work_and_drops_the_extract(tmp_path: Path) -> None:
    workspace = workspace_dir(tmp_path, "p1")
    (workspace / "outbox" / "rae").mkdir(parents=True)
    (workspace / "outbox" / "rae" / "bundle.json").write_text("{}")
    (workspace / "data").mkdir()
    (workspace / "data" / "extract.csv").write_text("id,age\n1,40\n")
    result = archive_workspace(tmp_path, "p1", MOMENT)
    assert result.archive == tmp_path / "archive" / "p1-20260615T120000Z.tar.gz"
    assert result.extract_deleted and result.sha256 and len(result.sha256) == 64
    with tarfile.open(result.archive) as tar:
        assert tar.getnames() == ["p1", "p1/outbox", "p1/outbox/rae", "p1/outbox/rae/bundle.json"]
    assert not workspace.exists()
    assert archive_workspace(tmp_path, "p1", MOMENT).archive is None
