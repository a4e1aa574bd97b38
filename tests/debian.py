"""Debian packages the tests need, installed with apt-get when missing (a fresh runner).

Every installer in the suite goes through here. pytest-xdist workers take one lock file, so
two of them never run apt-get at once (dpkg refuses a second, exit 100); apt-get waits for
dpkg's lock when something outside the suite holds it; and stale or absent package lists are
refreshed once before a retry."""

from __future__ import annotations

import fcntl
import os
import subprocess
from pathlib import Path

import pytest

INSTALL_LOCK = Path("/tmp/enclave-apt.lock")
LOCK_WAIT = ("-o", "DPkg::Lock::Timeout=300")


def installed(package: str) -> bool:
    status = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True
    )
    return status.stdout.strip() == "install ok installed"


def install(*packages: str, recommends: bool = False) -> None:
    """Install the ``packages`` not installed yet (with their recommended packages when
    ``recommends``); a test fails, naming the command, when that needs root."""
    if all(installed(name) for name in packages):
        return
    if os.geteuid() != 0:
        names = " ".join(packages)
        pytest.fail(f"only root can install {names}: apt-get install -y {names}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with INSTALL_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        missing = [name for name in packages if not installed(name)]  # another worker's?
        if not missing:
            return
        options = () if recommends else ("--no-install-recommends",)
        command = ["apt-get", "install", "-y", "-q", *options, *LOCK_WAIT, *missing]
        if subprocess.run(command, env=env, capture_output=True).returncode != 0:
            update = ["apt-get", "update", "-q", *LOCK_WAIT]
            subprocess.run(update, env=env, check=True, capture_output=True)
            subprocess.run(command, env=env, check=True, capture_output=True)
