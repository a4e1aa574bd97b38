"""Is the enclave's data encrypted at rest (SATRE 2.8.01)? Read off the running host.

A path is encrypted at rest when the filesystem holding it sits on a block device with a
``crypt`` (dm-crypt, LUKS) layer anywhere between the filesystem and the disk. ``assess`` is
the pure rule over what ``findmnt`` and ``lsblk`` print as JSON; ``check`` runs them. Anything
this cannot see through (a network filesystem, an overlay, tmpfs, which may be swapped out)
is reported as not shown encrypted: deny unless shown. Storage encrypted below the host (a
cloud provider's volumes) is declared in the Ansible role instead (``encryption_mode:
platform``), since no command on the host can tell.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class StorageAssessment:
    path: str
    source: str  # the filesystem's device (or what findmnt names instead)
    fstype: str
    layers: tuple[str, ...]  # device types from the filesystem down: ("crypt", "part", "disk")
    encrypted: bool

    def summary(self) -> str:
        stack = " on ".join(self.layers) if self.layers else "no block device"
        verdict = "encrypted" if self.encrypted else "NOT shown encrypted"
        return f"{self.path}: {verdict} ({self.fstype} on {self.source}: {stack})"


def _layers(device: Mapping[str, Any]) -> tuple[str, ...]:
    """Device types from ``device`` down to the disk, along the first path of lsblk's
    inverse tree (each child is what the device above it is built on). A device built on
    several (RAID, LVM over several disks) counts as encrypted only if every branch is."""
    below = [_layers(child) for child in device.get("children") or ()]
    kind = str(device.get("type", "?"))
    if not below:
        return (kind,)
    plain = [branch for branch in below if "crypt" not in branch]
    return (kind, *(plain[0] if plain else below[0]))


def assess(
    path: str, findmnt: Mapping[str, Any], lsblk: Mapping[str, Any] | None
) -> StorageAssessment:
    """The verdict for ``path`` from ``findmnt --json --target PATH -o TARGET,SOURCE,FSTYPE
    --nofsroot`` and ``lsblk --json --inverse --paths -o NAME,TYPE SOURCE`` (None when the
    source is not a block device)."""
    filesystems = findmnt.get("filesystems") or []
    if not filesystems:
        raise ValueError(f"findmnt reported no filesystem for {path}")
    mount = filesystems[0]
    source, fstype = str(mount.get("source", "")), str(mount.get("fstype", ""))
    devices = (lsblk or {}).get("blockdevices") or []
    layers = _layers(devices[0]) if devices else ()
    return StorageAssessment(path, source, fstype, layers, "crypt" in layers)


def _json(command: list[str]) -> dict[str, Any]:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ValueError(f"{command[0]} failed: {done.stderr.strip() or done.returncode}")
    loaded: dict[str, Any] = json.loads(done.stdout)
    return loaded


def check(path: Path) -> StorageAssessment:
    """Assess ``path`` on this host (it must exist)."""
    if not path.exists():
        raise ValueError(f"no such path: {path}")
    findmnt = _json(
        ["findmnt", "--json", "--target", str(path), "-o", "TARGET,SOURCE,FSTYPE", "--nofsroot"]
    )
    source = str((findmnt.get("filesystems") or [{}])[0].get("source", ""))
    lsblk = (
        _json(["lsblk", "--json", "--inverse", "--paths", "-o", "NAME,TYPE", source])
        if source.startswith("/dev/")
        else None
    )
    return assess(str(path), findmnt, lsblk)
