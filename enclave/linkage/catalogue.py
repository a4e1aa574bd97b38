"""Registering what the linkage unit holds in the control plane (its dataset register).

Every dataset version is registered through ``enclave.control.service.datasets``; all
entries of one action are checked first (a slug already taken by another version, a
custodian without the role), so that a refusal registers nothing. Re-registering the same
slug at the same version is a no-op, which makes an ingest safe to repeat.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from enclave.control.context import Context
from enclave.control.service import datasets
from enclave.control.varspec import VariableSpec
from enclave.linkage.errors import LinkageError

_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def slug_for(*parts: str) -> str:
    """A control-plane slug from name parts (``human_services``, ``income_support`` ->
    ``human-services-income-support``), at most 64 characters."""
    slug = "-".join(_NOT_SLUG.sub("-", p.lower()).strip("-") for p in parts if p)
    return slug[:64].strip("-")


@dataclass(frozen=True)
class Entry:
    """One dataset version to register."""

    slug: str
    name: str
    agency: str
    description: str
    version: str  # sha256:<hex>
    variables: tuple[VariableSpec, ...]


def register_all(
    ctx: Context,
    actor: str,
    entries: Sequence[Entry],
    *,
    custodian: str,
    purposes: Sequence[str],
) -> list[str]:
    """Register ``entries`` (skipping those registered at the same version); return the
    slugs newly registered.

    Raises:
        LinkageError: a slug is registered at another version (nothing is registered).
        ControlError: the control plane refused (permission, role, purpose); entries before
            the refused one stay registered only if the refusal came from a later entry,
            which the checks above make unlikely.
    """
    registered = {d.slug: d.version for d in datasets.list_datasets(ctx, actor)}
    todo: list[Entry] = []
    for entry in entries:
        version = registered.get(entry.slug)
        if version is None:
            todo.append(entry)
        elif version != entry.version:
            raise LinkageError(
                f"dataset {entry.slug} is registered at {version[:19]}…, not "
                f"{entry.version[:19]}…; register the new version under a new name"
            )
    done: list[str] = []
    for entry in todo:
        datasets.register_dataset(
            ctx,
            actor,
            slug=entry.slug,
            name=entry.name,
            source_agency=entry.agency,
            description=entry.description,
            version=entry.version,
            custodian=custodian,
            permitted_purposes=purposes,
            variables=entry.variables,
        )
        done.append(entry.slug)
    return done
