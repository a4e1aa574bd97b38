"""Hardening of the single-user server, attempted for real.

A researcher logs in to a real JupyterHub 6 and starts a JupyterLab server from a throw-away
environment that carries ``install_hardening`` in its own ``sys.prefix``; their home already
holds the overrides a researcher could write from a kernel (a server config that would open
everything, a lab page config that would re-enable the download plugin). Each test then tries
one way out through the browser's routes.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from enclave.control.context import Context
from enclave.control.db import make_engine, upgrade
from enclave.control.service import people
from enclave.hub.singleuser import LOCKED_PLUGINS, MAX_BODY_SIZE, install_hardening
from enclave.settings import Settings
from tests.enclave.control.factories import make_project, make_world
from tests.enclave.hub.hubprocess_auth import (
    PASSWORD,
    Browser,
    Hub,
    running_hub,
    sandbox_environment,
    totp_code,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("hub-singleuser")]

NOTEBOOK = {
    "type": "notebook",
    "content": {
        "cells": [{"cell_type": "markdown", "metadata": {}, "source": "secret table"}],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    },
}
CONFIG_DATA = re.compile(
    r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', re.S
)


@dataclass
class Server:
    hub: Hub
    browser: Browser
    url: str  # the server's base URL through the proxy
    home: Path
    marker: Path  # created if the user's own server config is ever executed

    def get(self, path: str, **kwargs: object) -> requests.Response:
        return self.browser.session.get(f"{self.url}/{path}", timeout=60, **kwargs)  # type: ignore[arg-type]

    def send(self, method: str, path: str, **kwargs: object) -> requests.Response:
        headers = {"X-XSRFToken": self.browser.xsrf("/user/researcher/alpha/")}
        return self.browser.session.request(
            method,
            f"{self.url}/{path}",
            headers=headers,
            timeout=60,
            **kwargs,  # type: ignore[arg-type]
        )


def _plant_user_overrides(home: Path, marker: Path) -> None:
    """What a researcher could write from a kernel before (re)starting their server."""
    config = home / ".jupyter"
    (config / "labconfig").mkdir(parents=True)
    (config / "jupyter_server_config.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "c.ServerApp.authorizer_class = 'jupyter_server.auth.authorizer.AllowAllAuthorizer'\n"
        "c.ServerApp.terminals_enabled = True\n"
        "c.ServerApp.max_body_size = 1 << 30\n",
        encoding="utf-8",
    )
    plugin = "@jupyterlab/docmanager-extension:download"
    (config / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {plugin: False}, "lockedExtensions": {plugin: False}}),
        encoding="utf-8",
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("hub-singleuser")
    settings = Settings(data_dir=root / "data", database_url=f"sqlite:///{root / 'enclave.db'}")
    engine = make_engine(settings.database_url)
    upgrade(engine)
    ctx = Context(engine=engine, data_dir=settings.data_dir)
    world = make_world(ctx)
    make_project(ctx, world, "alpha")
    people.set_password(ctx, world.admin, world.researcher, PASSWORD)
    secret = people.enrol_totp(ctx, world.admin, world.researcher).secret
    python = sandbox_environment(root / "env")
    home = root / "hub" / "home" / "researcher"
    marker = root / "user-config-was-executed"
    _plant_user_overrides(home, marker)
    with running_hub(root / "hub", settings, python) as hub:
        browser = Browser(hub)
        assert browser.login("researcher", PASSWORD, totp_code(secret)).status_code == 302
        started = browser.hub_api("POST", "/users/researcher/servers/alpha")
        assert started.status_code in (201, 202), started.text
        deadline = time.monotonic() + 180
        while not hub.api("GET", "/users/researcher").json()["servers"]["alpha"]["ready"]:
            assert time.monotonic() < deadline, hub.log()[-4000:]
            time.sleep(0.5)
        url = f"{hub.url}/user/researcher/alpha"
        assert browser.session.get(f"{url}/lab", timeout=60).status_code == 200  # server cookie
        yield Server(hub, browser, url, home, marker)
    ctx.close()


def _refusals(server: Server) -> list[str]:
    return re.findall(r"Refused by the enclave: (.*)", server.hub.log())


def test_raw_file_routes_answer_403(server: Server) -> None:
    assert server.send("PUT", "api/contents/files-a.ipynb", json=NOTEBOOK).status_code == 201
    for path in ("files/files-a.ipynb", "files/files-a.ipynb?download=1", "view/files-a.ipynb"):
        assert server.get(path).status_code == 403, path
    assert "read on contents (AuthenticatedFileHandler)" in _refusals(server)
    assert "read on contents (ViewHandler)" in _refusals(server)


def test_nbconvert_answers_403(server: Server) -> None:
    assert server.send("PUT", "api/contents/convert-a.ipynb", json=NOTEBOOK).status_code == 201
    for path in (
        "nbconvert/html/convert-a.ipynb",
        "nbconvert/html/convert-a.ipynb?download=true",
        "nbconvert/script/convert-a.ipynb",
        "api/nbconvert",
    ):
        assert server.get(path).status_code == 403, path
    posted = server.send("POST", "nbconvert/html", json={"content": NOTEBOOK["content"]})
    assert posted.status_code == 403
    assert "write on nbconvert (NbconvertPostHandler)" in _refusals(server)


def test_terminals_answer_404(server: Server) -> None:
    assert server.get("api/terminals").status_code == 404
    assert server.send("POST", "api/terminals").status_code == 404
    assert server.get("terminals/1").status_code == 404


def test_the_contents_api_still_serves_what_the_editor_needs(server: Server) -> None:
    assert server.send("PUT", "api/contents/kept.ipynb", json=NOTEBOOK).status_code == 201
    opened = server.get("api/contents/kept.ipynb?content=1")
    assert opened.status_code == 200  # by design: the browser gets what it renders
    assert opened.json()["content"]["cells"][0]["source"] == "secret table"


def test_uploads_over_the_cap_are_refused(server: Server) -> None:
    def upload(name: str, size: int, **extra: object) -> int:
        body = {"type": "file", "format": "base64", **extra}
        body["content"] = base64.b64encode(b"x" * size).decode()
        try:
            return server.send("PUT", f"api/contents/{name}", json=body).status_code
        except requests.ConnectionError:  # the server may drop an oversized request
            return 0

    assert upload("small.bin", 100_000) == 201
    big = upload("big.bin", MAX_BODY_SIZE + 1_000_000)
    assert big == 0 or big >= 400
    assert upload("chunked.bin", 100_000, chunk=1) == 413  # no way round the cap in pieces
    names = {item["name"] for item in server.get("api/contents").json()["content"]}
    assert "small.bin" in names
    assert not {"big.bin", "chunked.bin"} & names


def test_lab_lists_the_plugins_disabled_and_locked(server: Server) -> None:
    page = server.get("lab")
    match = CONFIG_DATA.search(page.text)
    assert match, "no page config in the lab page"
    config = json.loads(match[1])
    assert set(LOCKED_PLUGINS) <= set(config["disabledExtensions"])
    assert set(LOCKED_PLUGINS) <= set(config["lockedExtensions"])
    enable = server.send(
        "POST",
        "lab/api/plugins",
        json={"cmd": "enable", "plugin_name": "@jupyterlab/docmanager-extension:download"},
    )
    assert enable.status_code >= 400 and "locked" in enable.text
    widget = server.get("lab/api/settings/@jupyterlab/filebrowser-extension:widget").json()
    toolbar = widget["schema"]["properties"]["toolbar"]["default"]
    assert {"name": "uploader", "disabled": True} in toolbar


def test_the_researchers_own_config_is_never_read(server: Server) -> None:
    assert (server.home / ".jupyter" / "jupyter_server_config.py").exists()
    assert (server.home / ".jupyter" / "labconfig" / "page_config.json").exists()
    assert not server.marker.exists()
    # and the hardening it tried to undo holds (also asserted route by route above)
    assert server.get("api/terminals").status_code == 404


def test_the_labextension_cli_sees_the_plugins_locked(tmp_path: Path) -> None:
    python = sandbox_environment(tmp_path / "env")
    env = {"HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin", "JUPYTER_PREFER_ENV_PATH": "0"}

    def labextension(*args: str) -> str:
        done = subprocess.run(
            [str(python), "-m", "jupyterlab.labextensions", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return done.stdout + done.stderr

    plugin = "@jupyterlab/docmanager-extension:download"
    assert "locked" in labextension("enable", "--level=user", plugin)
    disabled = labextension("list").split("Disabled extensions:")[1]
    assert all(name in disabled for name in LOCKED_PLUGINS)


def test_install_hardening_writes_only_its_three_files(tmp_path: Path) -> None:
    written = install_hardening(tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        "etc/jupyter/jupyter_server_config.py",
        "etc/jupyter/labconfig/page_config.json",
        "share/jupyter/lab/settings/overrides.json",
    ]
    assert sorted(
        p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()
    ) == sorted(p.relative_to(tmp_path).as_posix() for p in written)
    config = written[0].read_text(encoding="utf-8")
    assert "EnclaveAuthorizer" in config and f"max_body_size = {MAX_BODY_SIZE}" in config
