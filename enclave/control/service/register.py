"""The public transparency register: which projects use which data, for what, on what basis.

Public (no actor, no audit): only what a project publishes about itself. No names of people,
no variable lists, no references to internal documents beyond the legal basis.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from enclave.control.context import Context
from enclave.control.models import Grant, Project
from enclave.control.rules import PURPOSES, REGISTER_STATES
from enclave.control.service._base import read


@dataclass(frozen=True)
class RegisterDataset:
    name: str
    source_agency: str


@dataclass(frozen=True)
class RegisterEntry:
    """One project as the public sees it."""

    slug: str
    title: str
    lay_summary: str
    public_benefit: str
    organisation: str
    purpose: str
    purpose_description: str
    legal_basis: str
    status: str
    start_date: date
    end_date: date
    datasets: tuple[RegisterDataset, ...]
    outputs_released: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: dates as ISO strings, datasets as a list of objects."""
        out = asdict(self)
        out["start_date"], out["end_date"] = self.start_date.isoformat(), self.end_date.isoformat()
        out["datasets"] = [asdict(d) for d in self.datasets]
        return out


# Column order of the CSV form; datasets are joined as "name (agency); ...".
CSV_COLUMNS = (
    "slug",
    "title",
    "organisation",
    "purpose",
    "legal_basis",
    "status",
    "start_date",
    "end_date",
    "datasets",
    "outputs_released",
    "lay_summary",
    "public_benefit",
)


def csv_row(entry: RegisterEntry) -> dict[str, str]:
    """One entry flattened for CSV, keyed by CSV_COLUMNS."""
    values = entry.to_dict()
    values["datasets"] = "; ".join(f"{d.name} ({d.source_agency})" for d in entry.datasets)
    return {column: str(values[column]) for column in CSV_COLUMNS}


def _datasets_used(session: Session, project: Project) -> tuple[RegisterDataset, ...]:
    # A dataset counts once a custodian approved it, even if the grant later ended.
    query = select(Grant).where(Grant.project_id == project.id, Grant.decided_at.is_not(None))
    used = {
        (g.dataset.name, g.dataset.source_agency)
        for g in session.scalars(query).unique()
        if g.decided_by_id is not None and g.state in ("approved", "revoked")
    }
    return tuple(RegisterDataset(name, agency) for name, agency in sorted(used))


def transparency_register(ctx: Context) -> list[RegisterEntry]:
    """Every project that is or was approved (never proposed or rejected ones), by title."""

    def work(session: Session) -> list[RegisterEntry]:
        query = select(Project).where(Project.state.in_([s.value for s in REGISTER_STATES]))
        return [
            RegisterEntry(
                slug=p.slug,
                title=p.title,
                lay_summary=p.lay_summary,
                public_benefit=p.public_benefit,
                organisation=p.organisation,
                purpose=p.purpose,
                purpose_description=PURPOSES.get(p.purpose, ""),
                legal_basis=p.legal_basis,
                status=p.state,
                start_date=p.start_date,
                end_date=p.end_date,
                datasets=_datasets_used(session, p),
                outputs_released=p.outputs_released,
            )
            for p in session.scalars(query.order_by(Project.title, Project.slug))
        ]

    return read(ctx, work)
