"""A throwaway Debian bookworm root for applying the playbook through Ansible's chroot
connection, unpacked from a cached debootstrap tarball (built once, rebuilt when missing).

Packages the playbook downloads are kept in a cache directory beside the tarball and copied in
and out of each root, so a warm run installs them for real without fetching them again. The
enclave's wheelhouse (its wheel and its pinned dependencies', for the role's offline install) is
cached there too and mounted read-only into the root.
"""

from __future__ import annotations

import email.parser
import fcntl
import hashlib
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename

from tests.deploy import tools

CACHE = Path("/var/cache/enclave-tests")
MIRROR = "http://deb.debian.org/debian"
# What Ansible itself needs on the target (python3-apt for the apt module); the roles install
# everything else. Changing this list names a new tarball, so a stale one is never reused.
INCLUDE = ("python3", "python3-apt", "ca-certificates", "gnupg")
TARBALL = CACHE / f"bookworm-minbase-{'-'.join(sorted(INCLUDE))}.tar"
DEBS = CACHE / "bookworm-debs"
# No service may start inside the chroot: Debian's maintainer scripts ask this file first.
# Where bookworm_root mounts the wheelhouse inside the root.
WHEELHOUSE = Path("/var/cache/enclave-wheelhouse")
POLICY_RC = "#!/bin/sh\n# services never start in this test chroot\nexit 101\n"


@contextmanager
def _locked() -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel workers build the tarball once
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def tarball() -> Path:
    """The cached debootstrap result, built when missing (a few minutes, once)."""
    tools.ensure("debootstrap", "nft", "openssl")
    with _locked():
        if TARBALL.exists():
            return TARBALL
        work = CACHE / "build"
        shutil.rmtree(work, ignore_errors=True)
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(INCLUDE)}",
                "bookworm",
                str(work),
                MIRROR,
            ],
            check=True,
            capture_output=True,
        )
        policy = work / "usr/sbin/policy-rc.d"
        policy.write_text(POLICY_RC)
        policy.chmod(0o755)
        for leftover in (work / "var/cache/apt/archives").glob("*.deb"):
            leftover.unlink()
        partial = TARBALL.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(work), "-cf", str(partial), "."], check=True)
        partial.rename(TARBALL)  # atomic: a half-written tarball is never taken for a good one
        shutil.rmtree(work)
        return TARBALL


def _trust_local_authorities(root: Path) -> None:
    """Give the root the certificate authorities this machine added to its own trust store
    (a network that inspects TLS signs with one): downloads in the root must verify too."""
    local = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
    if not local:
        return
    target = root / "usr/local/share/ca-certificates"
    target.mkdir(parents=True, exist_ok=True)
    for certificate in local:
        shutil.copy(certificate, target / certificate.name)
    subprocess.run(["chroot", str(root), "update-ca-certificates"], check=True, capture_output=True)


@contextmanager
def bookworm_root(where: Path, wheels: Path | None = None) -> Iterator[Path]:
    """A fresh bookworm root at ``where`` with /proc mounted, and ``wheels`` (a wheelhouse)
    mounted read-only at WHEELHOUSE, taken down afterwards; the packages it downloaded are
    saved for the next run."""
    source = tarball()
    where.mkdir(parents=True)
    subprocess.run(["tar", "-C", str(where), "-xf", str(source)], check=True)
    archives = where / "var/cache/apt/archives"
    DEBS.mkdir(parents=True, exist_ok=True)
    for deb in DEBS.glob("*.deb"):
        shutil.copy2(deb, archives / deb.name)
    # apt keeps what it downloads (saved below for the next run) only when told to.
    (where / "etc/apt/apt.conf.d/99keep-debs").write_text(
        'Binary::apt::APT::Keep-Downloaded-Packages "true";\n'
    )
    _trust_local_authorities(where)
    proc = where / "proc"
    subprocess.run(["mount", "-t", "proc", "proc", str(proc)], check=True)
    mounted = [proc]
    try:
        if wheels is not None:
            # read-only: nothing in the root (nor removing the root) can touch the cache
            house = where / WHEELHOUSE.relative_to("/")
            house.mkdir(parents=True)
            subprocess.run(["mount", "--bind", str(wheels), str(house)], check=True)
            mounted.append(house)
            subprocess.run(["mount", "-o", "remount,bind,ro", str(house)], check=True)
        yield where
    finally:
        for mount in reversed(mounted):
            subprocess.run(["umount", "-l", str(mount)], check=False)
        with _locked():
            for deb in archives.glob("*.deb"):
                if not (DEBS / deb.name).exists():
                    shutil.copy2(deb, DEBS / deb.name)


# The enclave and its dependencies as wheels, for the role's offline install (pip --no-index).
# Dependencies are keyed by what pins them; the enclave's own wheel by its sources, so an edit
# rebuilds that one wheel only. Bookworm's python3 is 3.11 like this machine's, so the wheels fit.
REPO = Path(__file__).resolve().parents[2]
WHEELS = CACHE / "wheels"
PACKAGES = ("enclave", "output_checker")
# bookworm's python3: older than this machine's, so a pinned release may not support it
TARGET_PYTHON = "3.11.2"
SOURCES_STAMP = ".sources-sha256"


def _digest(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _sources() -> list[Path]:
    # and the data files pyproject.toml installs beside the packages
    files = [REPO / "pyproject.toml", REPO / "README.md", REPO / "docs" / "analysis.md"]
    for package in PACKAGES:
        files += (p for p in (REPO / package).rglob("*") if p.is_file() and _shipped(p))
    return sorted(files)


def _shipped(path: Path) -> bool:
    return "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo")


def _pip(command: str, *args: str) -> None:
    # this machine's pip and its cache: after the first build, nothing is downloaded again
    done = subprocess.run(
        [sys.executable, "-m", "pip", command, "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pip {command} {' '.join(args)} failed:\n{done.stderr[-3000:]}")


def _enclave_wheel(out: Path, scratch: Path) -> Path:
    """The enclave built as a wheel (not editable) from a copy of its sources, so that the
    build leaves nothing in the working tree."""
    source = scratch / "source"
    for path in _sources():
        target = source / path.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    _pip("wheel", "--no-deps", "--wheel-dir", str(out), str(source))
    (wheel,) = out.glob("enclave-*.whl")
    return wheel


def _fits_target(wheel: Path) -> bool:
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = (
            n for n in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)
        )
        headers = email.parser.HeaderParser().parsestr(archive.read(metadata).decode())
    return TARGET_PYTHON in SpecifierSet(headers.get("Requires-Python") or "")


def _fit_target(house: Path, constraints: Path, wheel: Path, scratch: Path) -> None:
    """Replace the wheels whose Requires-Python excludes bookworm's python with the newest
    release that fits it: their pins are dropped, every other pin holds."""
    misfits = set()
    for found in house.glob("*.whl"):
        if not _fits_target(found):
            misfits.add(parse_wheel_filename(found.name)[0])
            found.unlink()
    if not misfits:
        return
    relaxed = scratch / "constraints.txt"
    relaxed.write_text(
        "".join(
            line
            for line in constraints.read_text().splitlines(keepends=True)
            if canonicalize_name(line.partition("==")[0].strip()) not in misfits
        )
    )
    target = ("--python-version", TARGET_PYTHON, "--only-binary=:all:", "--find-links", str(house))
    # pip download, as pip wheel cannot resolve for another python than its own
    _pip("download", *target, "--constraint", str(relaxed), "--dest", str(house), str(wheel))
    still = sorted(found.name for found in house.glob("*.whl") if not _fits_target(found))
    if still:
        raise RuntimeError(f"no release of {', '.join(still)} supports python {TARGET_PYTHON}")


def wheelhouse() -> Path:
    """The cached wheelhouse of the enclave and its pinned dependencies, built when missing or
    stale (minutes cold, seconds when only the enclave's sources changed)."""
    constraints = REPO / "constraints.txt"
    house = WHEELS / f"py{TARGET_PYTHON}-{_digest([constraints, REPO / 'pyproject.toml'])[:16]}"
    sources = _digest(_sources())
    stamp = house / SOURCES_STAMP
    with _locked():
        if stamp.exists() and stamp.read_text() == sources:
            return house
        scratch = WHEELS / "build"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        wheel = _enclave_wheel(scratch / "enclave", scratch)
        if house.exists():  # dependencies current: swap the enclave's wheel only
            for old in house.glob("enclave-*.whl"):
                old.unlink()
            shutil.copy2(wheel, house / wheel.name)
        else:
            partial = scratch / "house"
            _pip("wheel", "--constraint", str(constraints), "--wheel-dir", str(partial), str(wheel))
            _fit_target(partial, constraints, wheel, scratch)
            for stale in WHEELS.iterdir():
                if stale != scratch:
                    shutil.rmtree(stale)
            partial.rename(house)  # atomic: a half-built wheelhouse is never taken for a good one
        stamp.write_text(sources)
        shutil.rmtree(scratch)
        return house
