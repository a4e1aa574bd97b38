"""Synthetic administrative extracts of four ministries and a programme provider, with
realistic identifier errors, the truth kept apart, and known effects (pure: no I/O).

``generate_ministries(population, seed=...)`` draws a population in households and the
records each custodian holds about it: health (physician visits, hospitalisations),
education (enrolment, attainment), human services (income support, child-support
dependents, disability services), justice (offences, convictions, custody) and a programme
provider's service users (a Justice-Data-Lab-style request). Each delivery is split as a
custodian would split it: identifiers with random record keys for the linkage unit, content
with the same keys for the enclave. Two effects are built in so that analyses can be
validated: the programme lowers proven reoffending by a known amount, and an FASD-like cohort
has known gaps in attainment, school completion and disability-service use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from enclave.synth.ministries.deliveries import STYLES, Delivery, deliver
from enclave.synth.ministries.justice import justice, service_users
from enclave.synth.ministries.population import generate_population
from enclave.synth.ministries.services import education, fasd_effects, health, human_services
from enclave.synth.ministries.timing import fmt

MINISTRIES = ("health", "education", "human_services", "justice")
SOURCES = (*MINISTRIES, "service_provider")


@dataclass(frozen=True)
class MinistryData:
    """The deliveries (what custodians send) and the truth (never delivered).

    ``truth_links``: ``source``, ``record_key``, ``person_id`` for every delivered record.
    ``truth_persons``: one row per person with the true identifiers and cohort flags.
    ``effects``: the known effects, with generating parameters and realised values.
    """

    deliveries: Mapping[str, Delivery]
    truth_links: pd.DataFrame
    truth_persons: pd.DataFrame
    effects: Mapping[str, Any]


def generate_ministries(population: int = 100_000, *, seed: int = 0) -> MinistryData:
    """Deterministic synthetic deliveries for ``population`` people and ``seed``.

    Raises:
        ValueError: ``population`` below 1.
    """
    rng = np.random.default_rng(seed)
    persons = generate_population(population, rng).persons
    registers = {"health": health(persons, rng)}
    registers["education"], ability = education(persons, rng)
    registers["human_services"] = human_services(persons, rng)
    court = justice(persons, rng)
    registers["justice"] = court.register
    deliveries: dict[str, Delivery] = {}
    links: list[pd.DataFrame] = []
    for source in MINISTRIES:
        register = registers[source]
        delivery, truth = deliver(STYLES[source], persons, register.people, register.tables, rng)
        deliveries[source] = delivery
        links.append(truth)
    users = service_users(court, rng)
    delivery, truth = deliver(
        STYLES["service_provider"],
        persons,
        court.treated,
        {"interventions": users},
        rng,
    )
    deliveries["service_provider"] = delivery
    links.append(truth)
    effects = {
        "service_users": court.effect,
        "fasd": fasd_effects(persons, ability, registers),
    }
    truth_persons = persons.assign(
        date_of_birth=fmt(persons["date_of_birth"].to_numpy().astype("datetime64[D]"), "%Y-%m-%d"),
        service_user=np.isin(np.arange(len(persons)), court.treated),
    ).drop(columns=["moved_on", "risk"])
    return MinistryData(deliveries, pd.concat(links, ignore_index=True), truth_persons, effects)


__all__ = ["MINISTRIES", "SOURCES", "Delivery", "MinistryData", "generate_ministries"]
