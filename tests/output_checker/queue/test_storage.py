"""Content-addressed snapshots: written atomically under their hash, verified on every read,
and never a way out of the store."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from output_checker.queue.errors import IntegrityFailure, InvalidInput, NotFound
from output_checker.queue.storage import BlobStore, file_sha256, write_atomically


def test_put_stores_under_the_hash_and_reads_back(tmp_path: Path) -> None:
    store = BlobStore.for_data_dir(tmp_path)
    blob = store.put(b"region,count\nnorth,50\n")
    digest = hashlib.sha256(b"region,count\nnorth,50\n").hexdigest()
    assert blob.sha256 == digest and blob.size == 22
    assert store.path_of(digest) == tmp_path / "queue" / "blobs" / digest[:2] / digest
    assert store.read(digest) == b"region,count\nnorth,50\n"
    assert store.put(b"region,count\nnorth,50\n") == blob  # idempotent
    assert sorted(p.name for p in store.path_of(digest).parent.iterdir()) == [digest]
    assert stat.S_IMODE(store.path_of(digest).stat().st_mode) == 0o440  # read-only


def test_a_changed_snapshot_is_refused_and_put_repairs_it(tmp_path: Path) -> None:
    store = BlobStore.for_data_dir(tmp_path)
    digest = store.put(b"the reviewed bytes").sha256
    path = store.path_of(digest)
    path.chmod(0o640)
    path.write_bytes(b"swapped bytes")
    with pytest.raises(IntegrityFailure, match="does not match its hash"):
        store.read(digest)
    assert not store.verify(digest)
    store.put(b"the reviewed bytes")
    assert store.read(digest) == b"the reviewed bytes"


def test_missing_and_malformed_names(tmp_path: Path) -> None:
    store = BlobStore.for_data_dir(tmp_path)
    with pytest.raises(NotFound):
        store.read("0" * 64)
    for name in ("../../etc/passwd", "A" * 64, "0" * 63, ""):
        with pytest.raises(InvalidInput):
            store.path_of(name)


def test_a_symlink_planted_in_the_store_is_not_followed(tmp_path: Path) -> None:
    store = BlobStore.for_data_dir(tmp_path)
    secret = tmp_path / "secret"
    secret.write_bytes(b"outside")
    digest = hashlib.sha256(b"outside").hexdigest()
    store.path_of(digest).parent.mkdir(parents=True)
    store.path_of(digest).symlink_to(secret)
    with pytest.raises(IntegrityFailure):
        store.read(digest)


def test_copy_to_verifies_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = BlobStore.for_data_dir(tmp_path)
    digest = store.put(b"x" * 100_000).sha256
    target = tmp_path / "out" / "file.csv"
    store.copy_to(digest, target)
    assert file_sha256(target) == digest
    assert [p.name for p in target.parent.iterdir()] == ["file.csv"]


def test_write_atomically_cleans_up_when_it_fails(tmp_path: Path) -> None:
    target = tmp_path / "dir"
    target.mkdir()  # a directory where the file should go: the rename fails
    (target / "child").write_text("x")
    with pytest.raises(OSError):
        write_atomically(target, b"data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir"]
