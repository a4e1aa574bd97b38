"""What every browser test shares: Debian's Chromium (installed with apt when it is missing,
as root; never a browser build of Playwright's own) and a Playwright browser context on a
fresh profile under ``tmp_path``. A browser test imports ``browser_fixture`` from here, which
makes the ``browser`` fixture available to it."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, sync_playwright

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
INSTALL_LOCK = Path("/tmp/enclave-chromium-install.lock")
LOCK_WAIT = ("-o", "DPkg::Lock::Timeout=300")  # another apt-get (not ours) may hold dpkg's lock


def chromium() -> str:
    """The path of Debian's Chromium, installed with apt-get first if it is missing."""
    found = shutil.which("chromium")
    if found:
        return found
    if os.geteuid() != 0:
        pytest.fail("chromium is missing and only root can install it: apt-get install -y chromium")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "chromium"]
    with INSTALL_LOCK.open("w") as lock:  # xdist workers must not run apt at the same time
        fcntl.flock(lock, fcntl.LOCK_EX)
        missing = not shutil.which("chromium")
        if missing and subprocess.run(install, env=env, capture_output=True).returncode != 0:
            # The package lists may be stale or absent on a new machine: refresh, then retry.
            subprocess.run(["apt-get", "update", "-q"], env=env, check=True, capture_output=True)
            subprocess.run(install, env=env, check=True, capture_output=True)
    return shutil.which("chromium") or pytest.fail("apt-get installed no chromium binary")


def debian_packages(*packages: str) -> None:
    """Install the Debian ``packages`` that are missing, with apt-get as ``chromium`` does (the
    pixels-only tier's tests need xpra, Xvfb, xclip and the Pillow xpra imports)."""
    missing = [name for name in packages if not _installed(name)]
    if not missing:
        return
    if os.geteuid() != 0:
        pytest.fail(
            f"only root can install {' '.join(missing)}: apt-get install -y {' '.join(missing)}"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *LOCK_WAIT, *missing]
    with INSTALL_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, check=True, capture_output=True)
            subprocess.run(install, env=env, check=True, capture_output=True)


def _installed(package: str) -> bool:
    status = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True
    )
    return status.stdout.strip() == "install ok installed"


@pytest.fixture(name="browser")
def browser_fixture(tmp_path: Path) -> Iterator[BrowserContext]:
    """Chromium with a fresh profile under tmp_path."""
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=chromium(),
            args=CHROMIUM_ARGS,
            headless=True,
        )
        context.set_default_timeout(15_000)
        try:
            yield context
        finally:
            context.close()
