"""Fixtures for the analysis library: a project's data directory with registered datasets, a
quiet session whose summaries are captured, and ACRO for parity tests."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

from enclave.analysis import Session
from enclave.synth.cohort import generate_cohort
from tests.enclave.analysis.charity import charity_panel

PROJECT = "cydl"
OWNER = "ada"


@dataclass
class Echo:
    """Collects what the session prints."""

    lines: list[str] = field(default_factory=list)

    def __call__(self, text: str) -> None:
        self.lines.append(text)

    @property
    def last(self) -> str:
        return self.lines[-1]


@pytest.fixture(scope="session")
def cohort() -> tuple[pd.DataFrame, pd.DataFrame]:
    study = generate_cohort(400, seed=3)
    return study.persons, study.outcomes


@pytest.fixture
def data_dir(tmp_path: Path, cohort: tuple[pd.DataFrame, pd.DataFrame]) -> Path:
    """``<data_dir>`` laid out as the enclave does, with the project's extract registered."""
    persons, outcomes = cohort
    project_data = tmp_path / "projects" / PROJECT / "data"
    project_data.mkdir(parents=True)
    persons.to_parquet(project_data / "cohort-persons.parquet", index=False)
    outcomes.to_parquet(project_data / "cohort-outcomes.parquet", index=False)
    charity_panel().to_csv(project_data / "charities.csv", index=False)
    return tmp_path


@pytest.fixture
def echo() -> Echo:
    return Echo()


@pytest.fixture
def session(data_dir: Path, echo: Echo) -> Session:
    return Session(
        project=PROJECT,
        outbox=data_dir / "projects" / PROJECT / "outbox" / OWNER,
        datasets=data_dir / "projects" / PROJECT / "data",
        echo=echo,
    )


@pytest.fixture
def charities() -> pd.DataFrame:
    return charity_panel()


@pytest.fixture(scope="session")
def acro() -> Iterator[ModuleType]:
    """ACRO 1.0.2, imported without letting its logging configuration leak into other tests."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import acro as module
    root.setLevel(level)
    root.handlers[:] = handlers
    for name in ("acro", "acro:records", "acro:summary"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    yield module
