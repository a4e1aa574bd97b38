"""What every browser test shares: Debian's Chromium (installed with apt when it is missing,
as root; never a browser build of Playwright's own) and a Playwright browser context on a
fresh profile under ``tmp_path``. A browser test imports ``browser_fixture`` from here, which
makes the ``browser`` fixture available to it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, sync_playwright

from tests.debian import install

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium() -> str:
    """The path of Debian's Chromium, installed with apt-get first if it is missing."""
    if not shutil.which("chromium"):
        install("chromium", recommends=True)
    return shutil.which("chromium") or pytest.fail("apt-get installed no chromium binary")


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
