"""Content-addressed snapshots: ``<data_dir>/queue/blobs/<sha256[:2]>/<sha256>``.

A snapshot is written under a random temporary name in the store, flushed and fsynced, and
only then renamed to its hash, so a reader never sees a partial file and the name always
vouches for the content. Snapshots are immutable (mode 0o440); storing the same bytes twice
keeps one copy. Every read re-hashes the bytes and refuses a snapshot that no longer matches
its name (``IntegrityFailure``): what is reviewed and released is exactly what was stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from output_checker.queue.errors import IntegrityFailure, InvalidInput, NotFound

SHA256 = re.compile(r"^[0-9a-f]{64}$")
BLOCK = 1 << 20


@dataclass(frozen=True)
class Blob:
    """A stored snapshot: its name (sha256) and size in bytes."""

    sha256: str
    size: int


def sha256_of(data: bytes) -> str:
    """The sha256 (hex) of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes, *, mode: int = 0o440) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename
    (readers see the old file or the new one, never part of one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        tmp = ""
        _fsync_dir(path.parent)
    finally:
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


@dataclass(frozen=True)
class BlobStore:
    """The snapshot store rooted at ``root`` (``<data_dir>/queue/blobs``)."""

    root: Path

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> BlobStore:
        return cls(Path(data_dir) / "queue" / "blobs")

    def path_of(self, sha256: str) -> Path:
        """Where the snapshot named ``sha256`` lives; InvalidInput for a malformed name (which
        could otherwise walk out of the store)."""
        if not isinstance(sha256, str) or not SHA256.match(sha256):
            raise InvalidInput("a snapshot name must be 64 lower-case hex digits", rule="sha256")
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes) -> Blob:
        """Store ``data`` and return its name and size (idempotent).

        An existing snapshot of the same name is kept if it still matches, and replaced if it
        was damaged.
        """
        digest = sha256_of(data)
        target = self.path_of(digest)
        if target.is_file() and not target.is_symlink():
            try:
                self.read(digest)
                return Blob(digest, len(data))
            except IntegrityFailure:
                pass  # damaged copy: rewrite it below
        write_atomically(target, data)
        return Blob(digest, len(data))

    def exists(self, sha256: str) -> bool:
        return self.path_of(sha256).is_file()

    def read(self, sha256: str) -> bytes:
        """The snapshot's bytes, verified against its name.

        Raises NotFound if it is missing, IntegrityFailure if its content changed.
        """
        path = self.path_of(sha256)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"snapshot {sha256[:12]}… is missing", rule="snapshot_missing") from None
        except OSError as error:  # a symlink planted in the store (ELOOP), or unreadable
            raise IntegrityFailure(f"snapshot {sha256[:12]}… cannot be read: {error}") from None
        with os.fdopen(fd, "rb") as handle:
            data = handle.read()
        if sha256_of(data) != sha256:
            raise IntegrityFailure(
                f"snapshot {sha256[:12]}… does not match its hash: refusing to use it"
            )
        return data

    def verify(self, sha256: str) -> bool:
        """Whether the snapshot exists and still matches its hash."""
        try:
            self.read(sha256)
        except (NotFound, IntegrityFailure):
            return False
        return True

    def copy_to(self, sha256: str, destination: Path) -> None:
        """Copy the verified snapshot to ``destination`` atomically, then re-read the copy and
        check its hash (IntegrityFailure if the written file differs)."""
        write_atomically(destination, self.read(sha256), mode=0o444)
        if file_sha256(destination) != sha256:
            raise IntegrityFailure(f"the copy of {sha256[:12]}… at {destination.name} differs")


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read without following a symlink."""
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()
