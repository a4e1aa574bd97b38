"""A whole demonstration installation in one call: synthetic ministries, ingested, linked,
and a study project's research extract, built through the real services.

``build_demo_extract(data_dir)`` runs synth -> ingest -> link -> project with grants ->
extract with the control plane on SQLite under ``data_dir`` (``Settings(data_dir)``'s
default), exactly as the ``enclave`` commands would, and returns where the extract is and the
effects built into the data (``truth/effects.json``), which a real researcher never has: they
are there to validate methods. Each step is skipped when its result already exists, so a
second call with the same directory reuses everything (in a fraction of a second: nothing
heavy is imported then), and a call interrupted half-way picks up where it stopped. The
examples (``examples/cohort_study.ipynb``) and ``make up`` use it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enclave.linkage.errors import LinkageError
from enclave.linkage.zones import Zones

STAMP = "demo.json"
STAMP_FORMAT = "enclave-demo/1"
EXTRACT_MANIFEST = "manifest.json"  # extracts.MANIFEST, written last: the extract is whole
EFFECTS = Path("synth", "truth", "effects.json")
ADMIN = "admin@demo.enclave.example"
CUSTODIAN = "custodian@demo.enclave.example"
RESEARCHER = "ada@demo.enclave.example"
RESEARCHER_USERNAME = "ada"  # the control plane's username for RESEARCHER
PURPOSE = "social_research"
# What the Child-and-Youth-Data-Lab-style study (examples/cohort_study.ipynb) is granted:
# demographics for matching, and the dates of each ministry's events; nothing it does not use.
STUDY_GRANTS: Mapping[str, tuple[str, ...]] = {
    "health-demographics": ("birth_month", "sex", "postcode_district"),
    "health-physician-visits": ("visit_date", "diagnosis_group"),
    "health-hospitalisations": ("admission_date",),
    "education-enrolments": ("school_year", "special_needs"),
    "education-attainment": ("school_year", "grade", "assessment_score", "diploma"),
    "human-services-income-support": ("start_date", "end_date"),
    "human-services-disability-services": ("start_date", "end_date"),
    "justice-offences": ("offence_date",),
}


@dataclass(frozen=True)
class DemoExtract:
    """A demonstration installation: its data directory, the project and its extract
    directory, the known effects, and the steps this call carried out (none when reused)."""

    data_dir: Path
    project: str
    extract_dir: Path
    effects: Mapping[str, Any]
    steps: tuple[str, ...]

    @property
    def outbox(self) -> Path:
        """The demo researcher's outbox in the project, where the review queue looks."""
        return self.data_dir / "projects" / self.project / "outbox" / RESEARCHER_USERNAME


def build_demo_extract(
    data_dir: str | Path,
    *,
    population: int = 40_000,
    seed: int = 7,
    project_slug: str = "cydl-demo",
    master_key: bytes | None = None,
    progress: bool = False,
) -> DemoExtract:
    """Build (or reuse) a demonstration installation under ``data_dir`` and return the
    research extract of ``project_slug``.

    ``master_key`` is the linkage unit's master key; by default the demo's own, generated
    once into ``<data_dir>/secrets/linkage-master.key`` (a real installation keeps it out of
    the data directory). ``progress`` shows progress bars on stderr.

    Raises:
        LinkageError: ``population`` is below 1, or ``data_dir`` is not empty and holds no
            demonstration, or one of another population or seed. ControlError if the
            control plane refuses a step.
    """
    if population < 1:
        raise LinkageError("the demonstration population must be at least 1")
    root = Path(data_dir).resolve()
    _check_stamp(root, population, seed)
    extract = Zones(root).project_data(project_slug)
    steps: tuple[str, ...] = ()
    if not (extract / EXTRACT_MANIFEST).exists() or not (root / EFFECTS).exists():
        # Splink, pandera and SQLAlchemy take seconds to import: only when there is work
        from enclave.linkage import demo_build

        steps = demo_build.build(
            root, population, seed, project_slug, master_key=master_key, progress=progress
        )
    effects = json.loads((root / EFFECTS).read_text(encoding="utf-8"))
    return DemoExtract(root, project_slug, extract, effects, steps)


def _check_stamp(root: Path, population: int, seed: int) -> None:
    """Refuse a directory holding another demonstration; stamp a new one before any work,
    so that a half-built directory is recognised too."""
    wanted = {"format": STAMP_FORMAT, "population": population, "seed": seed}
    path = root / STAMP
    if path.exists():
        found = json.loads(path.read_text(encoding="utf-8"))
        if found != wanted:
            raise LinkageError(
                f"{root} holds a demonstration of population {found.get('population')} and "
                f"seed {found.get('seed')}; use another directory"
            )
        return
    if root.exists() and any(root.iterdir()):
        raise LinkageError(f"{root} is not empty and holds no demonstration; use another directory")
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(wanted) + "\n", encoding="utf-8")


__all__ = ["STUDY_GRANTS", "DemoExtract", "build_demo_extract"]
