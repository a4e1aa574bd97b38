"""The Ansible tree passes ansible-lint's production profile and Ansible's syntax check."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.deploy.roles import ANSIBLE, VENV_BIN


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
        "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "NO_COLOR": "1",
    }


@pytest.mark.slow
def test_ansible_lint_production_profile_is_clean(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(VENV_BIN / "ansible-lint"), "--profile", "production", "--offline", "--nocolor"],
        cwd=ANSIBLE,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Profile 'production' was required, and it passed" in output


def test_the_playbook_passes_the_syntax_check(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            str(VENV_BIN / "ansible-playbook"),
            "--syntax-check",
            "-i",
            "inventory.example.yml",
            "site.yml",
        ],
        cwd=ANSIBLE,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and "playbook: site.yml" in done.stdout, done.stdout + done.stderr


def test_the_syntax_check_can_fail(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("- name: Broken\n  hosts: all\n  roles:\n    - role: no-such-role\n")
    done = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "--syntax-check", "-i", "localhost,", str(broken)],
        cwd=ANSIBLE,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0 and "no-such-role" in done.stdout + done.stderr
