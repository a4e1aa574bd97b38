"""Shared fixtures of the data lab tests: one BLAS thread; ``enclave``, the synthetic justice
enclave (ministries synthesised, ingested and linked) built once per test session; ``lab``, the
people and project of the data lab service on it.

One BLAS thread: on the shared two-core machine a multithreaded BLAS competing with other jobs
made the propensity fit's Gram products ten times slower."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

if TYPE_CHECKING:
    from tests.enclave.datalab.test_pipeline import JusticeEnclave


@pytest.fixture(autouse=True, scope="session")
def _one_blas_thread() -> Iterator[None]:
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="session")
def enclave(tmp_path_factory: pytest.TempPathFactory) -> JusticeEnclave:
    from tests.enclave.datalab.test_pipeline import build_enclave

    return build_enclave(tmp_path_factory.getbasetemp() / "datalab-enclave")


@dataclass(frozen=True)
class DataLab:
    """People around the data lab project ``reoffending`` of the justice enclave: ``client``
    and ``other_client`` are its data lab clients (of one organisation each), ``stranger`` a
    data lab client of no project, ``researcher`` a researcher member, ``checkers`` three
    output checkers with no tie to it."""

    enclave: JusticeEnclave
    project: str = "reoffending"
    client: str = "client@charity.example"
    other_client: str = "client@othercharity.example"
    stranger: str = "stranger@charity.example"
    researcher: str = "researcher@university.example"
    checkers: tuple[str, ...] = (
        "checker-a@enclave.example",
        "checker-b@enclave.example",
        "checker-c@enclave.example",
    )


_BUILT: dict[str, DataLab] = {}


def build_lab(enclave: JusticeEnclave) -> DataLab:
    """The people and the active project of ``DataLab``, and the queue's tables (made once
    per enclave)."""
    if enclave.database_url in _BUILT:
        return _BUILT[enclave.database_url]
    from enclave.control.service import members, people, projects
    from output_checker.queue.db import upgrade as upgrade_queue
    from tests.enclave.datalab.test_pipeline import ADMIN

    lab = DataLab(enclave)
    ctx = enclave.context()
    try:
        upgrade_queue(ctx.engine)
        today = ctx.today()
        for number, (email, role, organisation) in enumerate(
            (
                (lab.client, "datalab_client", "Second Chance Trust"),
                (lab.other_client, "datalab_client", "Fresh Start"),
                (lab.stranger, "datalab_client", "Second Chance Trust"),
                (lab.researcher, "researcher", "University"),
                *((checker, "output_checker", "Enclave") for checker in lab.checkers),
            )
        ):
            people.create_person(
                ctx, ADMIN, email=email, name=email.split("@")[0], organisation=organisation,
                roles=[role], username=f"lab{number}",
            )  # fmt: skip
            people.accredit(
                ctx, ADMIN, email, scheme="Safe Researcher", reference=f"SR-{email[:12]}",
                issued_on=today - timedelta(days=10), expires_on=today + timedelta(days=400),
            )  # fmt: skip
        end = today + timedelta(days=365)
        projects.create_project(
            ctx, ADMIN, slug=lab.project, title="Reoffending after mentoring",
            lay_summary="Whether mentoring reduces reoffending",
            public_benefit="Charities learn what works", organisation="Data Lab",
            purpose="policy_evaluation", start_date=today - timedelta(days=1), end_date=end,
            legal_basis="Statistics Act s.1", ethics_reference="ETH-9", dsa_reference="DSA-9",
        )  # fmt: skip
        projects.approve_project(ctx, ADMIN, lab.project)
        projects.activate_project(ctx, ADMIN, lab.project)
        for email, role in (
            (lab.client, "datalab_client"),
            (lab.other_client, "datalab_client"),
            (lab.researcher, "researcher"),
        ):
            members.add_member(
                ctx, ADMIN, project=lab.project, email=email, role=role, expires_on=end
            )
    finally:
        ctx.close()
    _BUILT[enclave.database_url] = lab
    return lab


@pytest.fixture(scope="session")
def lab(enclave: JusticeEnclave) -> DataLab:
    return build_lab(enclave)
