"""Host tools the deployment tests run, installed with apt when missing (a fresh runner)."""

from __future__ import annotations

import shutil

from tests.debian import install

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
    install(*sorted({PACKAGES[tool] for tool in tools if shutil.which(tool) is None}))
