"""Reading outbox bundles, which untrusted code wrote.

A bundle is a directory ``<data_dir>/projects/<slug>/outbox/<user>/<bundle>/`` holding
``manifest.json``, the files it lists, and an empty ``finalised`` marker written last::

    {"bundle_version": 1,
     "title": "Bed use by region",
     "groups": {"tables": {"context": "…", "controls": "…"}},
     "files": [{"name": "beds.csv", "kind": "output", "group": "tables",
                "sha256": "…", "record": {…checker manifest record…}, "recipe": {…},
                "exception": ""}]}

Every session can write its outbox, so nothing in it is trusted. Directories are opened one
component at a time relative to their parent with ``O_NOFOLLOW``; files are opened with
``O_NOFOLLOW | O_NONBLOCK`` and re-checked on the open descriptor (a regular file with one
link, the same inode that was listed), and read only up to the size limit. Refused: symlinks
anywhere, hard links, devices, FIFOs and sockets, subdirectories, entries the manifest does
not list, names that are not plain, types outside the allow-list, archives, content that is
not its type, oversized files or bundles, too many files, malformed JSON, records that are
invalid or not bound to their file by sha256, and invalid recipes. Nothing is ever followed
out of the bundle.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from output_checker.queue.errors import BundleRejected, InvalidInput
from output_checker.queue.filetypes import (
    DEFAULT_LIMITS,
    Limits,
    check_file,
    check_name,
    check_record,
    filetype_of,
)
from output_checker.queue.recipes import parse_recipe

MANIFEST = "manifest.json"
MARKER = "finalised"
BUNDLE_VERSION = 1
PROJECT = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
OWNER = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
BUNDLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MANIFEST_KEYS = frozenset({"bundle_version", "title", "groups", "files"})
FILE_KEYS = frozenset({"name", "kind", "group", "sha256", "record", "recipe", "exception"})
MAX_MARKER = 4096
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@dataclass(frozen=True)
class BundleRef:
    """Where a bundle is: project slug, owner's username, bundle directory name."""

    project: str
    owner: str
    name: str


@dataclass(frozen=True)
class BundleFile:
    """One listed file of a bundle, read and checked, with its bytes."""

    name: str
    kind: str
    group: str
    data: bytes
    sha256: str
    record: dict[str, Any] | None
    recipe: dict[str, Any] | None
    exception: str


@dataclass(frozen=True)
class Bundle:
    """A bundle that passed every check, ready to become a request."""

    ref: BundleRef
    title: str
    groups: Mapping[str, tuple[str, str]]  # name -> (context, controls)
    files: tuple[BundleFile, ...]
    manifest_sha256: str


def _refuse(ref: BundleRef, problem: str) -> BundleRejected:
    return BundleRejected(f"bundle {ref.owner}/{ref.name} refused: {problem}")


def _open_dir(parent: int | None, name: str | Path) -> int:
    return os.open(name, _DIR_FLAGS, dir_fd=parent)


@contextlib.contextmanager
def _dir_chain(root: Path, *names: str) -> Iterator[int]:
    """The last directory of ``root/names...``, each component opened relative to the one
    before it without following symlinks; OSError if any is missing or a symlink."""
    fds = [_open_dir(None, root)]
    try:
        for name in names:
            fds.append(_open_dir(fds[-1], name))
        yield fds[-1]
    finally:
        for fd in reversed(fds):
            os.close(fd)


def _read_regular(ref: BundleRef, dir_fd: int, name: str, limit: int) -> bytes:
    """The bytes of the regular, singly linked file ``name`` in ``dir_fd``, at most ``limit``."""
    try:
        listed = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        raise _refuse(ref, f"{name!r} is missing") from None
    _check_entry(ref, name, listed, limit)
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as error:  # ELOOP: replaced by a symlink since it was listed
        raise _refuse(ref, f"{name!r} cannot be opened safely ({error.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        opened = os.fstat(handle.fileno())
        _check_entry(ref, name, opened, limit)
        if (opened.st_dev, opened.st_ino) != (listed.st_dev, listed.st_ino):
            raise _refuse(ref, f"{name!r} was replaced while being read")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise _refuse(ref, f"{name!r} is larger than {limit} bytes")
    return data


def _check_entry(ref: BundleRef, name: str, info: os.stat_result, limit: int) -> None:
    if stat.S_ISLNK(info.st_mode):
        raise _refuse(ref, f"{name!r} is a symbolic link")
    if stat.S_ISDIR(info.st_mode):
        raise _refuse(ref, f"{name!r} is a directory; bundles are flat")
    if not stat.S_ISREG(info.st_mode):
        raise _refuse(ref, f"{name!r} is not a regular file")
    if info.st_nlink != 1:
        raise _refuse(ref, f"{name!r} is a hard link")
    if info.st_size > limit:
        raise _refuse(ref, f"{name!r} is larger than {limit} bytes")


def _parse_manifest(ref: BundleRef, raw: bytes) -> dict[str, Any]:
    try:
        document = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError):
        raise _refuse(ref, f"{MANIFEST} is not valid JSON") from None
    if not isinstance(document, dict):
        raise _refuse(ref, f"{MANIFEST} must be a JSON object")
    extra = sorted(set(document) - MANIFEST_KEYS)
    if extra:
        raise _refuse(ref, f"{MANIFEST} has unexpected key(s) {', '.join(map(repr, extra))}")
    if document.get("bundle_version") != BUNDLE_VERSION:
        raise _refuse(ref, f"{MANIFEST} must have bundle_version {BUNDLE_VERSION}")
    if not isinstance(document.get("files"), list) or not document["files"]:
        raise _refuse(ref, f"{MANIFEST} must list at least one file")
    if not isinstance(document.get("title", ""), str):
        raise _refuse(ref, "title must be text")
    groups = document.get("groups", {})
    if not isinstance(groups, dict) or not all(
        isinstance(g, dict)
        and set(g) <= {"context", "controls"}
        and all(isinstance(v, str) for v in g.values())
        for g in groups.values()
    ):
        raise _refuse(ref, "groups must map names to {context, controls} texts")
    return document


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _file_entry(ref: BundleRef, position: int, raw: Any) -> dict[str, Any]:
    where = f"files[{position}]"
    if not isinstance(raw, dict) or set(raw) - FILE_KEYS or "name" not in raw:
        raise _refuse(ref, f"{where} must be an object with a name and known keys only")
    if not isinstance(raw["name"], str):
        raise _refuse(ref, f"{where}.name must be text")
    for key in ("kind", "group", "exception", "sha256"):
        if key in raw and not isinstance(raw[key], str):
            raise _refuse(ref, f"{where}.{key} must be text")
    if raw.get("kind", "output") not in ("output", "supporting"):
        raise _refuse(ref, f"{where}.kind must be output or supporting")
    return raw


def read_bundle(data_dir: Path, ref: BundleRef, limits: Limits = DEFAULT_LIMITS) -> Bundle:
    """Read and check one finalised bundle; raises BundleRejected naming the first problem."""
    for value, pattern, what in (
        (ref.project, PROJECT, "project"),
        (ref.owner, OWNER, "owner"),
        (ref.name, BUNDLE, "bundle name"),
    ):
        if not pattern.match(value):
            raise _refuse(ref, f"invalid {what} directory name")
    try:
        chain = _dir_chain(Path(data_dir), "projects", ref.project, "outbox", ref.owner, ref.name)
        with chain as fd:
            return _read_open_bundle(ref, fd, limits)
    except OSError as error:
        problem = f"the bundle directory cannot be opened safely ({error.strerror})"
        raise _refuse(ref, problem) from None


def _read_open_bundle(ref: BundleRef, fd: int, limits: Limits) -> Bundle:
    _read_regular(ref, fd, MARKER, MAX_MARKER)
    raw = _read_regular(ref, fd, MANIFEST, limits.max_manifest_bytes)
    document = _parse_manifest(ref, raw)
    entries = [_file_entry(ref, i, e) for i, e in enumerate(document["files"])]
    if len(entries) > limits.max_files:
        raise _refuse(ref, f"more than {limits.max_files} files")
    names = [e["name"] for e in entries]
    for name in names:  # before any name reaches the file system
        try:
            filetype_of(check_name(name))
        except InvalidInput as error:
            raise _refuse(ref, str(error)) from None
    if len(set(names)) != len(names):
        raise _refuse(ref, "a file is listed twice")
    present = set(os.listdir(fd))
    unexpected = sorted(present - {MANIFEST, MARKER, *names})
    if unexpected:
        raise _refuse(ref, f"unlisted entry {unexpected[0][:60]!r} in the bundle")
    files: list[BundleFile] = []
    total = 0
    for entry in entries:
        name = entry["name"]
        try:
            data = _read_regular(ref, fd, name, limits.max_file_bytes)
            check_file(name, data, limits)
            digest = hashlib.sha256(data).hexdigest()
            if entry.get("sha256", digest) != digest:
                raise _refuse(ref, f"{name!r} does not hash to the sha256 the manifest names")
            record = entry.get("record")
            if record is not None:
                record = check_record(name, record, digest)
            recipe = entry.get("recipe")
            if recipe is not None:
                parse_recipe(recipe)
        except BundleRejected:
            raise
        except InvalidInput as error:
            raise _refuse(ref, str(error)) from None
        total += len(data)
        if total > limits.max_bundle_bytes:
            raise _refuse(ref, f"the files add up to more than {limits.max_bundle_bytes} bytes")
        files.append(
            BundleFile(
                name=name,
                kind=entry.get("kind", "output"),
                group=entry.get("group", "default"),
                data=data,
                sha256=digest,
                record=record,
                recipe=recipe,
                exception=entry.get("exception", ""),
            )
        )
    groups = {
        name: (spec.get("context", ""), spec.get("controls", ""))
        for name, spec in document.get("groups", {}).items()
    }
    return Bundle(
        ref=ref,
        title=document.get("title", "") or ref.name,
        groups=groups,
        files=tuple(files),
        manifest_sha256=hashlib.sha256(raw).hexdigest(),
    )


def finalised_bundles(data_dir: Path) -> Iterator[BundleRef]:
    """Every bundle directory that carries the ``finalised`` marker, in name order, plus every
    symbolic link where a bundle directory should be (so that it is refused on the record).
    Unreadable or oddly named entries are skipped: they can never become requests."""
    projects = Path(data_dir) / "projects"
    try:
        slugs = sorted(os.listdir(projects))
    except OSError:
        return
    for slug in slugs:
        if not PROJECT.match(slug):
            continue
        try:
            with _dir_chain(projects, slug, "outbox") as outbox:
                yield from _owner_bundles(slug, outbox)
        except OSError:
            continue


def _owner_bundles(slug: str, outbox: int) -> Iterator[BundleRef]:
    for owner in sorted(os.listdir(outbox)):
        if not OWNER.match(owner):
            continue
        try:
            owner_fd = _open_dir(outbox, owner)
        except OSError:
            continue
        try:
            for name in sorted(os.listdir(owner_fd)):
                if not BUNDLE.match(name):
                    continue
                info = os.stat(name, dir_fd=owner_fd, follow_symlinks=False)
                if stat.S_ISLNK(info.st_mode) or (
                    stat.S_ISDIR(info.st_mode) and _finalised(owner_fd, name)
                ):
                    yield BundleRef(slug, owner, name)
        finally:
            os.close(owner_fd)


def _finalised(owner_fd: int, name: str) -> bool:
    try:
        bundle = _open_dir(owner_fd, name)
    except OSError:
        return False
    try:
        os.stat(MARKER, dir_fd=bundle, follow_symlinks=False)
    except OSError:
        return False
    finally:
        os.close(bundle)
    return True
