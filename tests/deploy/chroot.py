"""A throwaway Debian bookworm root for applying the playbook through Ansible's chroot
connection, unpacked from a cached debootstrap tarball (built once, rebuilt when missing).

Packages the playbook downloads are kept in a cache directory beside the tarball and copied in
and out of each root, so a warm run installs them for real without fetching them again.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.deploy import tools

CACHE = Path("/var/cache/enclave-tests")
MIRROR = "http://deb.debian.org/debian"
# What Ansible itself needs on the target (python3-apt for the apt module); the roles install
# everything else. Changing this list names a new tarball, so a stale one is never reused.
INCLUDE = ("python3", "python3-apt", "ca-certificates", "gnupg")
TARBALL = CACHE / f"bookworm-minbase-{'-'.join(sorted(INCLUDE))}.tar"
DEBS = CACHE / "bookworm-debs"
# No service may start inside the chroot: Debian's maintainer scripts ask this file first.
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
def bookworm_root(where: Path) -> Iterator[Path]:
    """A fresh bookworm root at ``where`` with /proc mounted, taken down afterwards; the
    packages it downloaded are saved for the next run."""
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
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(proc)], check=False)
        with _locked():
            for deb in archives.glob("*.deb"):
                if not (DEBS / deb.name).exists():
                    shutil.copy2(deb, DEBS / deb.name)
