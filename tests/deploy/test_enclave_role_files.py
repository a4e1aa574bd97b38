"""Files of the enclave role, exercised here against this checkout's code in every case the
chroot test (one SQLite install) does not reach: the hub's configuration file and the check
that decides whether to migrate, on each database state."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from traitlets.config import Config

from enclave.control.db import make_engine
from enclave.control.db import upgrade as upgrade_control
from output_checker.queue.db import upgrade as upgrade_queue
from tests.deploy.roles import ROLES, defaults, render


@pytest.fixture
def hub_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith(("ENCLAVE_", "JUPYTERHUB_")):
            monkeypatch.delenv(name)
    hub_env = render(
        "enclave",
        "hub.env.j2",
        enclave_data_dir=str(tmp_path / "data"),
        enclave_proxy_port=8000,
        enclave_chp_dir="/opt/enclave/proxy",
        enclave_hub_options={"TIER": "3", "IDLE_TIMEOUT": "600"},
    )
    for line in hub_env.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("ENCLAVE_HUB_RUN_DIR", str(tmp_path / "run"))  # not /run on this machine
    monkeypatch.setenv("ENCLAVE_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def test_the_hub_configuration_file_configures_jupyterhub_with_the_firewalled_useradd(
    hub_env: Path,
) -> None:
    source = render("enclave", "jupyterhub_config.py.j2")
    config = Config()
    exec(compile(source, "jupyterhub_config.py", "exec"), {"get_config": lambda: config})
    assert config.BwrapSpawner.useradd_command == "/usr/local/sbin/enclave-useradd"
    assert config.BwrapSpawner.tier == "3"
    assert config.JupyterHub.bind_url == "http://127.0.0.1:8000"
    assert config.ConfigurableHTTPProxy.command == [
        "/opt/enclave/proxy/node_modules/.bin/configurable-http-proxy"
    ]
    # the queue is its own service under gunicorn, not one the hub starts
    names = [service["name"] for service in config.JupyterHub.services]
    assert "review-queue" not in names and "idle-culler" in names
    assert (hub_env / "data" / "hub").is_dir()


def test_the_migration_check_says_behind_until_both_schemas_are_current(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'enclave.sqlite3'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCLAVE_")}
    env.update(ENCLAVE_DATABASE_URL=url, ENCLAVE_DATA_DIR=str(tmp_path / "data"))
    check = (ROLES / "enclave" / "files" / "revisions.py").read_text()

    def answer() -> str:
        done = subprocess.run(
            [sys.executable, "-c", check], env=env, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    assert answer() == "behind"
    engine = make_engine(url)
    upgrade_control(engine)
    assert answer() == "behind"  # the queue's schema is still missing
    upgrade_queue(engine)
    engine.dispose()
    assert answer() == "current"


def test_the_migrations_run_as_the_owner_without_the_hub_link() -> None:
    environment = defaults("enclave")["enclave_migration_environment"]
    assert environment["ENCLAVE_DATABASE_URL"] == "{{ enclave_database_owner_url }}"
    assert environment["ENCLAVE_HUB_URL"] == ""
