"""The outbox is untrusted: every attack a session could write is attempted, and each bundle
must be refused with a reason naming the problem, and nothing outside the bundle read.

These tests read bundles directly (``read_bundle``); ``test_watcher`` covers what the watcher
does with them (one request, or one recorded refusal)."""

from __future__ import annotations

import io
import json
import os
import socket
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from output_checker.queue.bundles import BundleRef, _check_entry, finalised_bundles, read_bundle
from output_checker.queue.errors import BundleRejected
from output_checker.queue.filetypes import Limits
from tests.output_checker.queue.factories import Output, QueueWorld, passing_output, write_bundle


@pytest.fixture
def world(tmp_path: Path) -> QueueWorld:
    # read_bundle needs no database: a world with a data directory and a dataset version
    from tests.enclave.control.factories import World

    return QueueWorld(base=World(), data_dir=tmp_path / "data", version="sha256:" + "0" * 64)


def _ref(name: str = "b1") -> BundleRef:
    return BundleRef("study", "researcher", name)


def _good(world: QueueWorld, name: str = "b1") -> Path:
    return write_bundle(world, "researcher", name, (passing_output(world),))


def _manifest(bundle: Path) -> dict[str, object]:
    document: dict[str, object] = json.loads((bundle / "manifest.json").read_text())
    return document


def _rewrite(bundle: Path, change: Callable[[dict[str, object]], None]) -> None:
    document = _manifest(bundle)
    change(document)
    (bundle / "manifest.json").write_text(json.dumps(document))


def _refused(world: QueueWorld, match: str, limits: Limits | None = None) -> None:
    with pytest.raises(BundleRejected, match=match):
        read_bundle(world.data_dir, _ref(), limits or Limits())


def test_a_well_formed_bundle_is_read(world: QueueWorld) -> None:
    _good(world)
    bundle = read_bundle(world.data_dir, _ref())
    assert [f.name for f in bundle.files] == ["by-region.csv"]
    assert bundle.groups == {"tables": ("Counts", "Threshold 10")}
    assert bundle.files[0].record is not None
    assert list(finalised_bundles(world.data_dir)) == [_ref()]


def test_an_unfinalised_bundle_is_not_listed(world: QueueWorld) -> None:
    write_bundle(world, "researcher", "b1", (passing_output(world),), finalise=False)
    assert list(finalised_bundles(world.data_dir)) == []


def test_a_symlinked_file_is_refused_and_not_followed(world: QueueWorld, tmp_path: Path) -> None:
    bundle = _good(world)
    secret = tmp_path / "secret.csv"
    secret.write_bytes((bundle / "by-region.csv").read_bytes())
    (bundle / "by-region.csv").unlink()
    (bundle / "by-region.csv").symlink_to(secret)
    _refused(world, "symbolic link")


def test_a_symlinked_manifest_or_marker_is_refused(world: QueueWorld, tmp_path: Path) -> None:
    bundle = _good(world)
    elsewhere = tmp_path / "manifest.json"
    (bundle / "manifest.json").rename(elsewhere)
    (bundle / "manifest.json").symlink_to(elsewhere)
    _refused(world, "symbolic link")
    (bundle / "manifest.json").unlink()
    elsewhere.rename(bundle / "manifest.json")
    (bundle / "finalised").unlink()
    (bundle / "finalised").symlink_to(elsewhere)
    _refused(world, "symbolic link")


def test_a_symlinked_bundle_directory_is_listed_and_refused(world: QueueWorld) -> None:
    real = _good(world, "real")
    (real.parent / "b1").symlink_to(real)
    assert _ref("b1") in list(finalised_bundles(world.data_dir))
    _refused(world, "cannot be opened safely")


def test_a_symlinked_owner_directory_is_not_followed(world: QueueWorld, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    write_bundle(world, "someone", "b1", (passing_output(world),))
    owner = world.data_dir / "projects" / "study" / "outbox" / "someone"
    owner.rename(outside)
    owner.symlink_to(outside)
    assert list(finalised_bundles(world.data_dir)) == []
    with pytest.raises(BundleRejected, match="cannot be opened safely"):
        read_bundle(world.data_dir, BundleRef("study", "someone", "b1"))


def test_a_hard_link_is_refused(world: QueueWorld, tmp_path: Path) -> None:
    bundle = _good(world)
    os.link(bundle / "by-region.csv", tmp_path / "another-name.csv")
    _refused(world, "hard link")


def test_a_fifo_is_refused_without_blocking(world: QueueWorld) -> None:
    bundle = _good(world)
    (bundle / "by-region.csv").unlink()
    os.mkfifo(bundle / "by-region.csv")
    _refused(world, "not a regular file")


def test_a_socket_is_refused(world: QueueWorld) -> None:
    bundle = _good(world)
    (bundle / "by-region.csv").unlink()
    # Unix socket paths are short: bind from inside the directory.
    cwd = os.getcwd()
    os.chdir(bundle)
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind("by-region.csv")
        _refused(world, "not a regular file")
    finally:
        server.close()
        os.chdir(cwd)


def test_a_device_is_refused(world: QueueWorld) -> None:
    bundle = _good(world)
    (bundle / "by-region.csv").unlink()
    try:
        os.mknod(bundle / "by-region.csv", 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # /dev/null
    except PermissionError:  # without CAP_MKNOD: the same rule, on the listed entry's stat
        faked = os.stat_result((stat.S_IFCHR | 0o600, 1, 1, 1, 0, 0, 0, 0, 0, 0))
        with pytest.raises(BundleRejected, match="not a regular file"):
            _check_entry(_ref(), "by-region.csv", faked, 1024)
        return
    _refused(world, "not a regular file")


def test_a_subdirectory_is_refused(world: QueueWorld) -> None:
    bundle = _good(world)
    (bundle / "by-region.csv").unlink()
    (bundle / "by-region.csv").mkdir()
    _refused(world, "directory")


def test_an_unlisted_entry_is_refused(world: QueueWorld) -> None:
    bundle = _good(world)
    (bundle / "extra.txt").write_text("smuggled")
    _refused(world, "unlisted entry 'extra.txt'")


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("../escape.csv", "unsafe file name"),
        ("sub/dir.csv", "unsafe file name"),
        (".hidden.csv", "unsafe file name"),
        ("..", "unsafe file name"),
        ("tab\tname.csv", "unsafe file name"),
        ("payload.exe", "not allowed"),
        ("notes.py", "not allowed"),
        ("bundle.zip", "not allowed"),
        ("data.tar.gz", "not allowed"),
        ("no-extension", "not allowed"),
    ],
)
def test_bad_names_and_types_are_refused(world: QueueWorld, name: str, match: str) -> None:
    bundle = _good(world)
    _rewrite(bundle, lambda d: d["files"][0].update(name=name, record=None))  # type: ignore[index]
    if "/" not in name and name != "..":
        (bundle / "by-region.csv").rename(bundle / name)
    _refused(world, match)


def test_an_archive_disguised_as_csv_is_refused(world: QueueWorld) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("inner.csv", "a,b\n1,2\n")
    output = Output("table.csv", buffer.getvalue(), None, None)
    write_bundle(world, "researcher", "b1", (output,))
    _refused(world, "archive|UTF-8")


def test_content_that_is_not_its_type_is_refused(world: QueueWorld) -> None:
    write_bundle(world, "researcher", "b1", (Output("plot.png", b"GIF89a...", None, None),))
    _refused(world, "not a png")


def test_binary_in_a_text_type_is_refused(world: QueueWorld) -> None:
    write_bundle(world, "researcher", "b1", (Output("t.txt", b"ab\x00cd", None, None),))
    _refused(world, "NUL")


def test_oversized_files_and_bundles_are_refused(world: QueueWorld) -> None:
    big = Output("big.txt", b"x" * 5000, None, None)
    other = Output("other.txt", b"y" * 5000, None, None)
    write_bundle(world, "researcher", "b1", (big, other))
    _refused(world, "larger than 4096", Limits(max_file_bytes=4096))
    _refused(world, "add up to more than 8000", Limits(max_bundle_bytes=8000))
    _refused(world, "more than 1 files", Limits(max_files=1))
    _refused(world, "manifest.json' is larger", Limits(max_manifest_bytes=10))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{not json", "not valid JSON"),
        ('{"bundle_version": 1, "files": [{"name": "x.csv", "x": NaN}]}', "not valid JSON"),
        ("[]", "must be a JSON object"),
        ('{"bundle_version": 2, "files": []}', "bundle_version 1"),
        ('{"bundle_version": 1, "files": []}', "at least one file"),
        ('{"bundle_version": 1, "files": [{"name": "by-region.csv"}], "run": "rm"}', "unexpected"),
        ('{"bundle_version": 1, "files": [{"name": 7}]}', "name must be text"),
        ('{"bundle_version": 1, "files": [{"name": "by-region.csv", "kind": "x"}]}', "kind"),
        ('{"bundle_version": 1, "groups": [], "files": [{"name": "by-region.csv"}]}', "groups"),
    ],
)
def test_malformed_manifests_are_refused(world: QueueWorld, text: str, match: str) -> None:
    bundle = _good(world)
    (bundle / "manifest.json").write_text(text)
    _refused(world, match)


def test_a_file_that_does_not_hash_to_the_manifest_is_refused(world: QueueWorld) -> None:
    bundle = _good(world)
    (bundle / "by-region.csv").write_bytes(b"region,count\nnorth,3\n")
    _refused(world, "does not hash to the sha256 the manifest names")


def test_a_record_not_bound_to_its_file_is_refused(world: QueueWorld) -> None:
    bundle = _good(world)
    _rewrite(bundle, lambda d: d["files"][0].pop("sha256"))  # type: ignore[index]
    (bundle / "by-region.csv").write_bytes(b"region,count\nnorth,3\n")
    _refused(world, "does not hash to the sha256 its checker record names")


def test_an_invalid_record_or_recipe_is_refused(world: QueueWorld) -> None:
    bundle = _good(world)
    _rewrite(bundle, lambda d: d["files"][0]["record"].update(status="fine"))  # type: ignore[index]
    _refused(world, "manifest record invalid at")
    bundle = _good(world)
    _rewrite(
        bundle,
        lambda d: d["files"][0]["recipe"].update(dataset="../../etc"),  # type: ignore[index]
    )
    _refused(world, "recipe invalid at")


def test_a_listed_name_outside_the_bundle_is_never_opened(world: QueueWorld) -> None:
    bundle = _good(world)
    outside = bundle.parent / "escape.csv"
    outside.write_bytes((bundle / "by-region.csv").read_bytes())
    (bundle / "by-region.csv").unlink()
    _rewrite(bundle, lambda d: d["files"][0].update(name="../escape.csv"))  # type: ignore[index]
    before = outside.stat().st_atime_ns
    _refused(world, "unsafe file name")
    assert outside.stat().st_atime_ns == before
