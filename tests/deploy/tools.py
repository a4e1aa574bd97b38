"""Host tools the deployment tests run, installed with apt when missing (a fresh runner)."""

from __future__ import annotations

import shutil
import subprocess

# tool -> the Debian package that ships it
PACKAGES = {
    "debootstrap": "debootstrap",
    "nft": "nftables",
    "nginx": "nginx",
    "systemd-analyze": "systemd",
    "openssl": "openssl",
    "psql": "postgresql-client",
}


def ensure(*tools: str) -> None:
    missing = sorted({PACKAGES[tool] for tool in tools if shutil.which(tool) is None})
    if missing:
        subprocess.run(["apt-get", "install", "-y", *missing], check=True, capture_output=True)
