"""The systemd units in deploy/systemd: valid for systemd itself (``systemd-analyze verify``
against a scratch root holding the units, stand-ins for their programs and Debian's own
units, which works without systemd as PID 1), hardened (``systemd-analyze security
--offline``, and the options the deployment promises), and relaxed for the hub only where a
comment says why."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy import tools
from tests.deploy.roles import DEPLOY

UNITS = DEPLOY / "systemd"
SERVICES = ("enclave-hub", "enclave-queue", "enclave-admin", "enclave-workers", "enclave-alerts")
TIMERS = ("enclave-alerts",)  # each starts the oneshot service of its name
EVERYWHERE = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "PrivateTmp": "yes",
    "ProtectHome": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelTunables": "yes",
    "LockPersonality": "yes",
    "RestrictSUIDSGID": "yes",
    "SystemCallArchitectures": "native",
}


def _service(name: str) -> dict[str, list[str]]:
    """The [Service] section: every assignment of a key, in order (systemd allows repeats)."""
    values: dict[str, list[str]] = {}
    section = ""
    for line in (UNITS / f"{name}.service").read_text().splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "Service" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


@pytest.fixture(scope="module")
def scratch_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tools.ensure("systemd-analyze")
    root = tmp_path_factory.mktemp("systemd-root")
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    for unit in (*UNITS.glob("*.service"), *UNITS.glob("*.timer")):
        shutil.copy(unit, root / "etc/systemd/system" / unit.name)
    programs = root / "opt/enclave/venv/bin"
    programs.mkdir(parents=True)
    for program in ("jupyterhub", "gunicorn", "output-checker", "enclave"):
        (programs / program).write_text("#!/bin/sh\n")
        (programs / program).chmod(0o755)
    return root


def test_deploy_holds_exactly_these_services_and_timers() -> None:
    assert sorted(p.stem for p in UNITS.glob("*.service")) == sorted(SERVICES)
    assert sorted(p.stem for p in UNITS.glob("*.timer")) == sorted(TIMERS)


@pytest.mark.parametrize(
    "unit", [f"{s}.service" for s in SERVICES] + [f"{t}.timer" for t in TIMERS]
)
def test_systemd_accepts_the_unit_without_a_warning(scratch_root: Path, unit: str) -> None:
    done = subprocess.run(
        [
            "systemd-analyze",
            "verify",
            "--man=no",
            f"--root={scratch_root}",
            f"/etc/systemd/system/{unit}",
        ],
        capture_output=True,
        text=True,
    )
    # unknown keys and unparsable values are only warnings for systemd: none is allowed here
    assert done.returncode == 0 and done.stderr == "" and done.stdout == "", done.stderr


@pytest.mark.parametrize(
    ("name", "threshold"),
    [
        ("enclave-queue", 2.0),
        ("enclave-admin", 2.0),
        ("enclave-workers", 2.0),
        ("enclave-alerts", 2.0),
        ("enclave-hub", 5.0),
    ],
)
def test_exposure_stays_low(name: str, threshold: float) -> None:
    tools.ensure("systemd-analyze")
    done = subprocess.run(
        [
            "systemd-analyze",
            "security",
            "--offline=yes",
            "--no-pager",
            f"--threshold={threshold * 10:.0f}",
            str(UNITS / f"{name}.service"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr


@pytest.mark.parametrize("name", SERVICES)
def test_every_unit_has_the_common_hardening(name: str) -> None:
    service = _service(name)
    for key, value in EVERYWHERE.items():
        assert service.get(key) == [value], key
    assert "CapabilityBoundingSet" in service
    assert "@system-service" in service["SystemCallFilter"][0]
    assert service["RestrictAddressFamilies"][0].split()[0] == "AF_UNIX"


@pytest.mark.parametrize(
    "name", ["enclave-queue", "enclave-admin", "enclave-workers", "enclave-alerts"]
)
def test_the_web_and_worker_units_run_unprivileged_and_locked_down(name: str) -> None:
    service = _service(name)
    assert service["User"] == ["enclave"]
    assert service["CapabilityBoundingSet"] == [""]  # no capability at all
    assert service["ReadWritePaths"] == ["/var/lib/enclave"]
    assert service["RestrictNamespaces"] == ["yes"]
    assert service["MemoryDenyWriteExecute"] == ["yes"]
    assert service["IPAddressDeny"] == ["any"] and service["IPAddressAllow"] == ["localhost"]
    assert "AF_NETLINK" not in service["RestrictAddressFamilies"][0]


def test_the_hub_is_delegated_its_cgroup_and_each_relaxation_is_explained() -> None:
    service = _service("enclave-hub")
    assert service["Delegate"] == ["yes"]
    assert service["User"] == ["root"]
    text = (UNITS / "enclave-hub.service").read_text()
    for relaxed in (
        "ProtectControlGroups",
        "RestrictNamespaces",
        "MemoryDenyWriteExecute",
        "PrivateDevices",
    ):
        assert relaxed not in service
        assert f"# Relaxed: no {relaxed}=, because" in text
    assert "# Relaxed: root, because" in text
    assert "# Relaxed: useradd rewrites /etc/passwd" in text
    assert service["CapabilityBoundingSet"][0].split() and "CAP_SYS_ADMIN" not in text
    assert service["ExecStart"] == [
        "/opt/enclave/venv/bin/jupyterhub -f /etc/enclave/jupyterhub_config.py"
    ]


def test_the_units_run_the_deliverables() -> None:
    assert "'output_checker.queue.web:create_app()'" in _service("enclave-queue")["ExecStart"][0]
    assert "'enclave.control.web:create_app()'" in _service("enclave-admin")["ExecStart"][0]
    assert _service("enclave-workers")["ExecStart"] == [
        "/opt/enclave/venv/bin/output-checker workers"
    ]
    parsed = configparser.ConfigParser(strict=False, interpolation=None)
    parsed.read_string((UNITS / "enclave-hub.service").read_text())
    assert parsed["Install"]["WantedBy"] == "multi-user.target"


def test_the_alert_scan_runs_every_ten_minutes_as_a_oneshot() -> None:
    service = _service("enclave-alerts")
    assert service["Type"] == ["oneshot"]
    assert service["ExecStart"] == ["/opt/enclave/venv/bin/enclave admin scan-alerts"]
    timer = configparser.ConfigParser()
    timer.read_string((UNITS / "enclave-alerts.timer").read_text())
    assert timer["Timer"]["OnCalendar"] == "*:0/10" and timer["Timer"]["Persistent"] == "true"
    assert timer["Install"]["WantedBy"] == "timers.target"
