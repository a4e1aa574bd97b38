"""Keys: the master key from a file or the environment (never the database), project key
files created once with owner-only permissions, and gone for good once destroyed."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from enclave.control.workspace import FileKeyDestroyer
from enclave.linkage.errors import KeyUnavailable
from enclave.linkage.keys import (
    MASTER_KEY_ENV,
    MASTER_KEY_FILE_ENV,
    derive_project_key,
    generate_master_key,
    issue_project_key,
    key_file,
    load_master_key,
    read_project_key,
)


def test_master_key_from_file_then_environment(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    generate_master_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    from_file = load_master_key({MASTER_KEY_FILE_ENV: str(path), MASTER_KEY_ENV: "ab" * 32})
    assert from_file == bytes.fromhex(path.read_text().strip())
    assert load_master_key({MASTER_KEY_ENV: "ab" * 32}) == b"\xab" * 32


def test_master_key_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    generate_master_key(path)
    before = path.read_text()
    with pytest.raises(KeyUnavailable, match="never overwritten"):
        generate_master_key(path)
    assert path.read_text() == before


@pytest.mark.parametrize(
    "environ,message",
    [
        ({}, "no linkage master key"),
        ({MASTER_KEY_ENV: "zz" * 32}, "hex digits"),
        ({MASTER_KEY_ENV: "ab" * 16}, "at least 32 bytes"),
        ({MASTER_KEY_FILE_ENV: "/nonexistent/key"}, "cannot read"),
    ],
)
def test_bad_master_keys_are_refused(environ: dict[str, str], message: str) -> None:
    with pytest.raises(KeyUnavailable, match=message):
        load_master_key(environ)


def test_project_key_file_is_created_once_owner_only(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    first = issue_project_key(keys, "study")
    again = issue_project_key(keys, "study")
    assert first == again == read_project_key(keys, "study")
    assert stat.S_IMODE(key_file(keys, "study").stat().st_mode) == 0o600
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert len(first.salt) == 32 and first.version == 1


def test_destroyed_key_cannot_be_read_and_a_new_one_differs(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    master = b"\x01" * 32
    old = derive_project_key(master, issue_project_key(keys, "study"))
    destroyed = FileKeyDestroyer(keys).destroy("study")
    assert destroyed == ["study.key"]
    with pytest.raises(KeyUnavailable, match="destroyed at closure"):
        read_project_key(keys, "study")
    fresh = derive_project_key(master, issue_project_key(keys, "study"))
    assert fresh != old


def test_a_key_file_of_another_project_is_refused(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    issue_project_key(keys, "alpha")
    key_file(keys, "alpha").rename(key_file(keys, "beta"))
    with pytest.raises(KeyUnavailable, match="belongs to project alpha"):
        read_project_key(keys, "beta")
