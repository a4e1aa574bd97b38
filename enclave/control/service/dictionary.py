"""The data dictionary of a session (SATRE 2.1.05): metadata of what the grants let it read.

Only the catalogue's metadata (dataset name, version, each granted variable's description and
sensitivity class) is read here, never a data value; a variable of a granted dataset that the
grant does not name is left out, so the dictionary never tells of data the session cannot see.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from enclave.control.context import Context
from enclave.control.models import Dataset
from enclave.control.service._base import read
from enclave.control.service.access import DataMount


@dataclass(frozen=True)
class DictionaryVariable:
    name: str
    sensitivity: str
    description: str


@dataclass(frozen=True)
class DictionaryEntry:
    """One granted dataset as the session sees it: the grant's version and variables."""

    dataset: str
    name: str
    source_agency: str
    description: str
    version: str
    expires_on: date
    variables: tuple[DictionaryVariable, ...]


def granted_dictionary(ctx: Context, mounts: Sequence[DataMount]) -> tuple[DictionaryEntry, ...]:
    """One entry per mount, its variables in the catalogue's order, restricted to the grant."""
    slugs = {m.dataset for m in mounts}

    def work(session: Session) -> tuple[DictionaryEntry, ...]:
        rows = session.scalars(select(Dataset).where(Dataset.slug.in_(slugs))).unique()
        by_slug = {row.slug: row for row in rows}
        return tuple(_entry(by_slug[m.dataset], m) for m in mounts if m.dataset in by_slug)

    return read(ctx, work) if slugs else ()


def _entry(dataset: Dataset, mount: DataMount) -> DictionaryEntry:
    granted = set(mount.variables)
    return DictionaryEntry(
        dataset=dataset.slug,
        name=dataset.name,
        source_agency=dataset.source_agency,
        description=dataset.description,
        version=mount.version,
        expires_on=mount.expires_on,
        variables=tuple(
            DictionaryVariable(v.name, v.sensitivity, v.description)
            for v in dataset.variables
            if v.name in granted
        ),
    )
