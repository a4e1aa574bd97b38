"""SATRE 2.2.06 and 2.7.02 in the Ansible tree.

teardown.yml is run for real on this machine (connection=local) with every path it touches
pointed into a throwaway directory: refused without the confirmation, or with another host's
name, and then nothing is changed; confirmed, the keys are shredded, the directories wiped and
the record written outside them with the audit chain's head read by the real ``enclave``
command (the database is SQLite here, so dropping PostgreSQL's database is left off). The base
role's unattended-upgrades files are rendered and checked the way the other roles' are.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML ships no type information

from tests.deploy.roles import ANSIBLE, ROLES, VENV_BIN, defaults, render

HOST = "enclave-decom-test"
ZERO_HEAD = "0" * 64  # a fresh chain's head


@dataclass(frozen=True)
class Layout:
    root: Path
    data: Path
    config: Path
    backups: Path
    record: Path
    inventory: Path


def _tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its content's sha256 (what "nothing changed" compares)."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    data, config, backups = tmp_path / "data", tmp_path / "etc", tmp_path / "backups"
    for directory, name in (
        (data / "keys", "alpha.key"),
        (data / "secrets", "session.key"),
        (config / "keys", "linkage.key"),
        (backups / "b1", "dump.sql"),
    ):
        directory.mkdir(parents=True)
        (directory / name).write_text(f"{name}: {os.urandom(16).hex()}\n")
    (data / "workspaces").mkdir()
    (data / "workspaces" / "note.txt").write_text("project files\n")
    (config / "secrets.env").write_text("ENCLAVE_SECRET_KEY=00\n")
    database = tmp_path / "enclave.sqlite3"
    (config / "enclave.toml").write_text(
        f'database_url = "sqlite:///{database}"\ndata_dir = "{data}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCLAVE_")}
    subprocess.run(
        [str(VENV_BIN / "enclave"), "admin", "init", "--config", str(config / "enclave.toml")],
        env=env,
        check=True,
        capture_output=True,
    )
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": str(VENV_BIN / "python"),
    }
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({"all": {"hosts": {HOST: host}}}))
    return Layout(tmp_path, data, config, backups, tmp_path / "record", inventory)


def _teardown(layout: Layout, *confirm: str) -> subprocess.CompletedProcess[str]:
    variables = {
        "enclave_data_dir": str(layout.data),
        "enclave_config_dir": str(layout.config),
        "enclave_backup_dir": str(layout.backups),
        "enclave_venv": str(VENV_BIN.parent),
        "enclave_user": "root",
        "enclave_manage_services": False,
        "decommission_drop_database": False,
        "decommission_record_dir": str(layout.record),
    }
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ENCLAVE_")},
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
        "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"),
        "ANSIBLE_LOCAL_TEMP": str(layout.root / "ansible-tmp"),
        "ANSIBLE_NOCOLOR": "1",
    }
    extra = [f"confirm_decommission={name}" for name in confirm]
    return subprocess.run(
        [
            str(VENV_BIN / "ansible-playbook"),
            "-i",
            str(layout.inventory),
            "-e",
            json.dumps(variables),
            *(arg for value in extra for arg in ("-e", value)),
            "teardown.yml",
        ],
        cwd=ANSIBLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_teardown_playbook_passes_the_syntax_check(layout: Layout) -> None:
    done = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "--syntax-check", "-i", "localhost,", "teardown.yml"],
        cwd=ANSIBLE,
        env={**os.environ, "ANSIBLE_LOCAL_TEMP": str(layout.root / "ansible-tmp")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and "playbook: teardown.yml" in done.stdout, done.stderr


@pytest.mark.parametrize("confirm", [(), ("another-host",), ("",)], ids=["none", "wrong", "empty"])
def test_teardown_without_this_hosts_name_fails_and_changes_nothing(
    layout: Layout, confirm: tuple[str, ...]
) -> None:
    before = _tree(layout.root)
    done = _teardown(layout, *confirm)
    assert done.returncode != 0
    assert f"refusing to decommission {HOST}" in done.stdout, done.stdout[-3000:]
    assert "changed=0" in done.stdout
    assert _tree(layout.root) == before
    assert not layout.record.exists()


def test_a_record_directory_inside_a_wiped_one_is_refused_before_anything(
    layout: Layout,
) -> None:
    before = _tree(layout.root)
    layout = Layout(**{**layout.__dict__, "record": layout.data / "record"})
    done = _teardown(layout, HOST)
    assert done.returncode != 0 and "which is wiped" in done.stdout, done.stdout[-3000:]
    assert _tree(layout.root) == before


def test_confirmed_teardown_shreds_the_keys_wipes_the_data_and_leaves_a_record(
    layout: Layout,
) -> None:
    done = _teardown(layout, HOST)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert not layout.data.exists() and not layout.config.exists()
    assert (layout.backups / "b1" / "dump.sql").exists()  # kept unless asked for
    shredded = re.findall(rf"changed: \[{HOST}\] => \(item=(\S+)\)", done.stdout)
    assert str(layout.data / "keys/alpha.key") in shredded, done.stdout[-4000:]
    (record_file,) = layout.record.iterdir()
    assert record_file.name.startswith(f"{HOST}-")
    assert record_file.stat().st_mode & 0o077 == 0
    record = json.loads(record_file.read_text())
    assert record["host"] == HOST
    assert record["key_files_destroyed"] == sorted(
        [
            str(layout.config / "keys/linkage.key"),
            str(layout.data / "keys/alpha.key"),
            str(layout.data / "secrets/session.key"),
        ]
    )
    assert record["secret_files_destroyed"] == [str(layout.config / "secrets.env")]
    assert record["directories_wiped"] == [str(layout.data), str(layout.config)]
    assert record["database_dropped"] is None
    assert record["audit_head_sha256"] == ZERO_HEAD
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["finished"])


def test_unattended_upgrades_apply_the_security_archive_daily_without_rebooting() -> None:
    settings = defaults("base")
    periodic = render("base", "20auto-upgrades.j2")
    assert 'APT::Periodic::Unattended-Upgrade "1";' in periodic
    assert 'APT::Periodic::Update-Package-Lists "1";' in periodic
    origins = render("base", "52enclave-unattended-upgrades.j2", **settings)
    # Debian's own list (point releases too) is cleared first; only the security archive stays
    assert origins.index("#clear Unattended-Upgrade::Origins-Pattern;") < origins.index(
        "Origins-Pattern {"
    )
    patterns = re.findall(r'^\s+"(origin=[^"]+)";', origins, re.MULTILINE)
    assert patterns == ["origin=Debian,codename=${distro_codename}-security,label=Debian-Security"]
    assert 'Unattended-Upgrade::Automatic-Reboot "false";' in origins
    rebooting = render(
        "base", "52enclave-unattended-upgrades.j2", **{**settings, "base_automatic_reboot": True}
    )
    assert 'Unattended-Upgrade::Automatic-Reboot "true";' in rebooting
    assert 'Automatic-Reboot-Time "03:30";' in rebooting


def test_the_base_role_installs_unattended_upgrades_and_writes_both_files() -> None:
    tasks = yaml.safe_load((ROLES / "base/tasks/main.yml").read_text())
    installs = [t["ansible.builtin.apt"]["name"] for t in tasks if "ansible.builtin.apt" in t]
    assert "unattended-upgrades" in installs
    (written,) = [t for t in tasks if t.get("name") == "Apply security updates daily"]
    assert {item["dest"] for item in written["loop"]} == {
        "20auto-upgrades",
        "52enclave-unattended-upgrades",
    }
    assert written["ansible.builtin.template"]["dest"].startswith("/etc/apt/apt.conf.d/")
