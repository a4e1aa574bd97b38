"""SATRE 2.8.01: data at rest is encrypted, and the host is checked, not trusted.

The encryption role is run for real on this machine (connection=local) against a loop
device backed by a throwaway file: it formats a blank device as LUKS2 and writes the crypttab
line (into a throwaway crypttab), leaves an existing LUKS volume alone, and refuses to format
a device holding a filesystem or to run without a mode that encrypts. Opening the volume and
mounting from it need device-mapper, which this machine's kernel lacks, so those tasks
(outside the tag ``encryption-prepare``) are not run here. ``enclave check-encryption`` is run on
this host's real mounts, and its rule on the block-device stacks lsblk prints.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from enclave.ops.encryption import assess
from tests import debian
from tests.deploy.roles import ANSIBLE, ROLES, VENV_BIN

pytestmark = pytest.mark.xdist_group("deploy-encryption")

PASSPHRASE = "correct horse battery staple, for a test"


def _run(*command: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, input=stdin, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def cryptsetup() -> None:
    """The test set-up installs what the role's own first task would (cryptsetup)."""
    debian.install("cryptsetup")


@pytest.fixture
def loop_device(tmp_path: Path, cryptsetup: None) -> Iterator[str]:
    backing = tmp_path / "disk.img"
    with backing.open("wb") as handle:
        handle.truncate(40 * 1024 * 1024)
    done = _run("losetup", "--find", "--show", str(backing))
    assert done.returncode == 0, done.stderr
    device = done.stdout.strip()
    try:
        yield device
    finally:
        _run("losetup", "--detach", device)


def _play(tmp_path: Path, device: str, **overrides: Any) -> subprocess.CompletedProcess[str]:
    playbook = tmp_path / "play.yml"
    playbook.write_text("- hosts: all\n  roles: [encryption]\n")
    inventory = tmp_path / "inventory.json"
    host = {"ansible_connection": "local", "ansible_python_interpreter": str(VENV_BIN / "python")}
    inventory.write_text(json.dumps({"all": {"hosts": {"encryption-test": host}}}))
    variables = {
        "encryption_luks_device": device,
        "encryption_luks_passphrase": PASSPHRASE,
        "encryption_crypttab": str(tmp_path / "crypttab"),
        "enclave_config_dir": str(tmp_path / "etc"),
        "enclave_group": "root",
        "enclave_data_dir": str(tmp_path / "data"),
        "enclave_backup_dir": str(tmp_path / "backups"),
        **overrides,
    }
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
        "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(ROLES),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_NOCOLOR": "1",
    }
    return subprocess.run(
        [
            str(VENV_BIN / "ansible-playbook"),
            "-i",
            str(inventory),
            "-e",
            json.dumps(variables),
            "--tags",
            "encryption-prepare",
            str(playbook),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _luks_uuid(device: str) -> str:
    done = _run("cryptsetup", "luksUUID", device)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_blank_device_becomes_luks2_with_argon2id_and_a_crypttab_line(
    tmp_path: Path, loop_device: str
) -> None:
    done = _play(tmp_path, loop_device)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert PASSPHRASE not in done.stdout + done.stderr
    dump = _run("cryptsetup", "luksDump", loop_device).stdout
    assert "Version:       \t2" in dump
    assert "aes-xts-plain64" in dump and "argon2id" in dump
    assert "enclave-data" in dump  # the label
    # the passphrase really opens key slot 0 (checked without device-mapper)
    opened = _run(
        "cryptsetup", "open", "--test-passphrase", "--key-file=-", loop_device, stdin=PASSPHRASE
    )
    assert opened.returncode == 0, opened.stderr
    wrong = _run("cryptsetup", "open", "--test-passphrase", "--key-file=-", loop_device, stdin="x")
    assert wrong.returncode != 0
    line = (tmp_path / "crypttab").read_text().split()
    assert line == ["enclave-data", f"UUID={_luks_uuid(loop_device)}", "none", "luks,discard"]


def test_an_existing_luks_volume_is_never_formatted_again(tmp_path: Path, loop_device: str) -> None:
    assert _play(tmp_path, loop_device).returncode == 0
    uuid = _luks_uuid(loop_device)
    again = _play(tmp_path, loop_device)
    assert again.returncode == 0, again.stdout[-4000:]
    assert _luks_uuid(loop_device) == uuid
    assert "changed=0" in again.stdout


def test_a_device_holding_a_filesystem_is_refused_and_left_intact(
    tmp_path: Path, loop_device: str
) -> None:
    made = _run("mkfs.ext4", "-q", "-L", "precious", loop_device)
    assert made.returncode == 0, made.stderr
    done = _play(tmp_path, loop_device)
    assert done.returncode != 0
    assert "holds a signature (TYPE=ext4" in done.stdout, done.stdout[-3000:]
    probe = _run("blkid", "--probe", "--output", "export", loop_device).stdout
    assert "TYPE=ext4" in probe and "LABEL=precious" in probe
    assert _run("cryptsetup", "isLuks", loop_device).returncode != 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"encryption_mode": "none"}, "set encryption_mode to luks"),
        ({"encryption_mode": "platform"}, "set encryption_mode to luks"),
        ({"encryption_luks_device": ""}, "set encryption_mode to luks"),
        ({"encryption_luks_passphrase": "short"}, "at least 20 characters"),
    ],
    ids=["no-encryption", "platform-unnamed", "no-device", "weak-passphrase"],
)
def test_a_play_that_would_not_encrypt_is_refused_and_changes_nothing(
    tmp_path: Path, loop_device: str, overrides: dict[str, str], message: str
) -> None:
    done = _play(tmp_path, loop_device, **overrides)
    assert done.returncode != 0
    assert message in done.stdout, done.stdout[-3000:]
    assert _run("cryptsetup", "isLuks", loop_device).returncode != 0
    assert not (tmp_path / "crypttab").exists()
    assert not (tmp_path / "etc").exists()


def test_the_platform_mode_formats_nothing_and_records_the_statement(
    tmp_path: Path, loop_device: str
) -> None:
    statement = "volumes encrypted by the provider with a customer-managed key"
    done = _play(
        tmp_path, loop_device, encryption_mode="platform", encryption_platform_statement=statement
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert (tmp_path / "etc" / "encryption-at-rest").read_text().strip() == statement
    assert _run("cryptsetup", "isLuks", loop_device).returncode != 0


def _lsblk(*stack: str) -> dict[str, Any]:
    """lsblk's inverse tree for a single chain of device types, top first."""
    node: dict[str, Any] | None = None
    for index, kind in reversed(list(enumerate(stack))):
        device: dict[str, Any] = {"name": f"/dev/d{index}", "type": kind}
        if node is not None:
            device["children"] = [node]
        node = device
    return {"blockdevices": [node]}


FINDMNT = {"filesystems": [{"target": "/srv", "source": "/dev/d0", "fstype": "ext4"}]}


@pytest.mark.parametrize(
    ("stack", "encrypted"),
    [
        (("crypt", "part", "disk"), True),  # LUKS on a partition
        (("lvm", "crypt", "disk"), True),  # LVM on LUKS
        (("crypt", "lvm", "part", "disk"), True),  # LUKS on LVM
        (("part", "disk"), False),
        (("lvm", "raid1", "part", "disk"), False),
    ],
)
def test_a_path_is_encrypted_only_with_a_crypt_layer_below_it(
    stack: tuple[str, ...], encrypted: bool
) -> None:
    found = assess("/srv", FINDMNT, _lsblk(*stack))
    assert found.encrypted is encrypted and found.layers == stack


def test_a_device_built_on_a_plain_and_an_encrypted_member_is_not_encrypted() -> None:
    raid = {
        "name": "/dev/md0",
        "type": "raid1",
        "children": [
            {"name": "/dev/mapper/a", "type": "crypt", "children": [{"name": "a", "type": "disk"}]},
            {"name": "/dev/sdb", "type": "disk"},
        ],
    }
    assert not assess("/srv", FINDMNT, {"blockdevices": [raid]}).encrypted


@pytest.mark.parametrize("source", ["server:/export", "overlay", "tmpfs"])
def test_storage_that_cannot_be_seen_through_is_not_shown_encrypted(source: str) -> None:
    findmnt = {"filesystems": [{"target": "/srv", "source": source, "fstype": "nfs4"}]}
    found = assess("/srv", findmnt, None)
    assert not found.encrypted and "NOT shown encrypted" in found.summary()


def test_the_command_reads_this_hosts_real_mounts(tmp_path: Path) -> None:
    done = _run(str(VENV_BIN / "enclave"), "check-encryption", str(tmp_path))
    source = _run("findmnt", "-n", "-o", "SOURCE", "--nofsroot", "--target", str(tmp_path))
    device = source.stdout.strip()
    types = _run("lsblk", "-n", "-s", "-o", "TYPE", device).stdout.split()
    shown = device.startswith("/dev/") and "crypt" in types
    assert done.returncode == (0 if shown else 1), done.stdout + done.stderr
    assert device in done.stdout and str(tmp_path) in done.stdout
    missing = _run(str(VENV_BIN / "enclave"), "check-encryption", str(tmp_path / "absent"))
    assert missing.returncode == 2 and "no such path" in missing.stderr
