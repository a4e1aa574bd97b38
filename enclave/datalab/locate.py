"""From a validated cohort to the two frames ``evaluate`` needs (spec 8.3, 8.4, 8.9, 8.12):
"locating the offender" through the linkage unit, "locating the sentence", then pre-index
covariates and proven-reoffending outcomes for the cohort and the comparison pool.

Identity matching reads the justice identifiers and the trained model from the linkage zone
of the enclave's data directory (``enclave link ingest`` and ``enclave link run`` made them).
A cohort member with a national offender id that equals exactly one justice record's
national id is matched on it; everyone else is scored against the justice records with the
saved Splink model (``predict_between``: the cohort is never linked with itself), and joins
the person of their best link at or above the model's cluster threshold. The client's
identifiers are then dropped, DuckDB's scratch directory (where it may spill them) is
deleted, and, given a control-plane context, the destruction is audit-logged. Everything
after that works on person ids and the justice content tables.

The index event is a release from custody (custodial sentences) or the conviction date of a
court order, fine or caution. A cohort member's index event is the one nearest their
intervention start within ``LOOKBACK_DAYS`` before and ``LOOKAHEAD_DAYS`` after it; a pool
member's is their first event inside the period the cohort's index events span. Both need the
full follow-up and waiting period inside the data.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from enclave.datalab.cohort import Cohort
from enclave.datalab.errors import DataLabError
from enclave.datalab.evaluate import Stage
from enclave.datalab.outcomes import FOLLOW_UP_DAYS, WAITING_DAYS, proven_reoffending
from enclave.linkage.zones import Zones

if TYPE_CHECKING:
    from enclave.control.context import Context

JUSTICE = "justice"
COHORT_SOURCE = "datalab_cohort"
PERSON = "person"
LOOKBACK_DAYS = 90
LOOKAHEAD_DAYS = 90
DAYS_PER_YEAR = 365.25
CUSTODY = "custody"
AUDIT_ACTION = "datalab_identifiers_destroyed"
CONTENT = ("demographics", "offences", "convictions", "custody")
COVARIATES = (
    "male",
    "age_at_index",
    "prior_convictions",
    "prior_custody",
    "prior_cautions",
    "age_at_first_conviction",
    "copas_rate",
    "index_disposal",
    "index_offence_group",
)
"""Pre-index covariates the justice content supports (spec 8.4's demographic and criminal
history groups); ``index_disposal`` and ``index_offence_group`` are categorical."""
BENEFITS_SOURCE, BENEFITS = "human_services", "human-services-income-support"
BENEFIT_DAYS = "income_support_days_3y"
BENEFIT_YEARS = 3
"""The benefit-history covariate (spec 8.4's third group): days on income support in the
three years before the index date, when income support is ingested and linked."""


@dataclass(frozen=True, eq=False)
class Located:
    """The cohort and comparison pool frames (indexed by person id, covariates and outcome
    columns), the covariate names and the attrition stages before matching."""

    cohort: pd.DataFrame
    pool: pd.DataFrame
    covariates: tuple[str, ...]
    stages: tuple[Stage, ...]


def _content_table(zones: Zones, slug: str) -> pd.DataFrame:
    """The current version of a content dataset: the newest file of its slug."""
    files = sorted((zones.content / slug).glob("*.parquet"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise DataLabError(
            f"no {slug} dataset in the content zone: ingest the justice delivery first"
        )
    return pd.read_parquet(files[-1])


def _persons_of(zones: Zones, source: str = JUSTICE) -> pd.Series:
    """Record key -> person id of one source, from the person index."""
    if not zones.person_index.exists():
        raise DataLabError("no person index yet: link the justice records first (enclave link run)")
    index = pd.read_parquet(zones.person_index, columns=["source", "record_key", "person_id"])
    mine = index[index["source"] == source]
    if mine.empty and source == JUSTICE:
        raise DataLabError("the person index holds no justice records: run enclave link run")
    return pd.Series(mine["person_id"].to_numpy(), index=mine["record_key"].to_numpy())


def _keyed_by_person(table: pd.DataFrame, persons: pd.Series) -> pd.DataFrame:
    """``table`` with its record keys replaced by person ids (unlinked rows left out)."""
    person = persons.reindex(table.pop("record_key").to_numpy()).to_numpy()
    return table.assign(**{PERSON: person}).loc[pd.notna(person)].reset_index(drop=True)


def load_justice(zones: Zones) -> dict[str, pd.DataFrame]:
    """The justice content tables keyed by ``person``, and the income-support spells
    (``benefits``) of the people linked to them when that dataset is there."""
    persons = _persons_of(zones, JUSTICE)
    out = {
        name: _keyed_by_person(_content_table(zones, f"{JUSTICE}-{name}"), persons)
        for name in CONTENT
    }
    if (zones.content / BENEFITS).is_dir():
        spells = _content_table(zones, BENEFITS)[["record_key", "start_date", "end_date"]]
        linked = _keyed_by_person(spells, _persons_of(zones, BENEFITS_SOURCE))
        out["benefits"] = linked.loc[linked[PERSON].isin(out["demographics"][PERSON])]
    return out


def _identifier_frame(people: pd.DataFrame, columns: Sequence[str], keys: pd.Index) -> pd.DataFrame:
    """The cohort in the linkage unit's standardised layout (columns of the indexed
    sources; roles the cohort lacks are null)."""
    from enclave.linkage.standardise import ALIAS, UNIQUE_ID, canonical_given_name

    frame = pd.DataFrame(
        {
            UNIQUE_ID: keys.astype(str),
            "given_name": people["forename"].to_numpy(),
            "surname": people["surname"].to_numpy(),
            "date_of_birth": people["date_of_birth"].to_numpy(),
            "sex": people["sex"].to_numpy(),
            "postcode": people["postcode"].to_numpy(),
            "national_id": people["offender_id"].to_numpy(),
        }
    )
    frame[ALIAS] = frame["given_name"].map(canonical_given_name, na_action="ignore")
    return frame.reindex(columns=[UNIQUE_ID, *[c for c in columns if c != UNIQUE_ID]]).astype(
        "string"
    )


def _exact_ids(people: pd.DataFrame, justice: pd.DataFrame, persons: pd.Series) -> pd.Series:
    """Cohort row -> person id where the offender id equals exactly one justice record's
    national id."""
    ids = justice[["record_key", "national_id"]].dropna()
    unique = ids.drop_duplicates("national_id", keep=False)
    by_id = pd.Series(
        persons.reindex(unique["record_key"].to_numpy()).to_numpy(),
        index=unique["national_id"].to_numpy(),
    )
    found = by_id.reindex(people["offender_id"].to_numpy()).to_numpy()
    return pd.Series(found, index=people.index).dropna()


def identify(
    people: pd.DataFrame,
    zones: Zones,
    *,
    threshold: float | None = None,
    progress: bool = False,
) -> tuple[pd.Series, int]:
    """Cohort row -> justice person id for the people found, and how many were found by
    offender id. Scratch files are removed before returning, whatever happens."""
    from enclave.linkage.backends import open_backend
    from enclave.linkage.link import Linkage, best_links
    from enclave.linkage.model import TrainedModel
    from enclave.linkage.pipeline import load_sources
    from enclave.linkage.progress import bar

    if not zones.model.exists():
        raise DataLabError(
            "no linkage model yet: link the ingested sources first (enclave link run)"
        )
    persons = _persons_of(zones)
    model = TrainedModel.load(zones.model)
    justice = load_sources(zones, [JUSTICE])[JUSTICE]
    # the model may compare roles the justice records lack (other sources had them)
    compared = {c for s in model.settings.comparisons for c in (s.column, s.also) if c}
    absent = sorted(compared - set(justice.columns))
    justice = justice.reindex(columns=[*justice.columns, *absent]).astype("string")
    exact = _exact_ids(people, justice, persons)
    rest = people.loc[~people.index.isin(exact.index)]
    cut = model.settings.cluster_threshold if threshold is None else threshold
    new = _identifier_frame(rest, list(justice.columns), rest.index)
    pairs = pd.DataFrame()
    if len(new):
        scratch = Path(tempfile.mkdtemp(prefix="datalab-", dir=_scratch_parent(zones)))
        try:
            with (
                bar(2, "locating the cohort", enabled=progress) as steps,
                open_backend(model.settings, scratch) as api,
            ):
                linkage = Linkage(
                    api, {JUSTICE: justice}, model.settings, model=model, progress=progress
                )
                steps.update()
                pairs = linkage.predict_between({COHORT_SOURCE: new}, threshold=cut)
                steps.update()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    del new, rest
    found = exact
    if not pairs.empty:
        links = best_links(pairs)
        rows = links["record_key_l"].astype(int).to_numpy()
        linked = pd.Series(persons.reindex(links["record_key_r"]).to_numpy(), index=rows)
        found = pd.concat([found, linked])
    return found.dropna().sort_index(), len(exact)


def _scratch_parent(zones: Zones) -> Path:
    """Scratch space inside the owner-only linkage zone, where identifiers may live."""
    parent = zones.linkage / "work"
    parent.mkdir(parents=True, exist_ok=True)
    return parent


def index_events(justice: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Every possible index event: ``person``, ``index_date`` (release from custody, or the
    conviction date of other disposals), ``conviction_date``, ``disposal`` and the offence
    group of the conviction."""
    convictions = justice["convictions"].merge(
        justice["offences"][["offence_id", "offence_group"]], on="offence_id", how="left"
    )
    custody = justice["custody"].dropna(subset=["release_date"])
    custodial = convictions[convictions["disposal"] == CUSTODY].merge(
        custody.rename(columns={"reception_date": "conviction_date"}),
        on=[PERSON, "conviction_date"],
        how="inner",
    )
    custodial = custodial.drop_duplicates([PERSON, "conviction_date"]).assign(
        index_date=lambda f: f["release_date"]
    )
    other = convictions[convictions["disposal"] != CUSTODY].assign(
        index_date=lambda f: f["conviction_date"]
    )
    columns = [PERSON, "index_date", "conviction_date", "disposal", "offence_group"]
    events = pd.concat([custodial[columns], other[columns]], ignore_index=True)
    return events.sort_values([PERSON, "index_date"], kind="stable").reset_index(drop=True)


def cohort_events(
    events: pd.DataFrame,
    starts: pd.Series,
    lookback: int = LOOKBACK_DAYS,
    lookahead: int = LOOKAHEAD_DAYS,
) -> pd.DataFrame:
    """Each cohort person's event nearest their intervention start (``starts``: person ->
    date) inside the window; ties go to the earlier event. People without one are absent."""
    mine = events.merge(starts.rename("start").rename_axis(PERSON).reset_index(), on=PERSON)
    gap = (mine["index_date"] - mine["start"]).dt.days
    inside = mine.loc[(gap >= -lookback) & (gap <= lookahead)].assign(distance=gap.abs())
    inside = inside.sort_values([PERSON, "distance", "index_date"], kind="stable")
    return inside.drop_duplicates(PERSON).drop(columns=["start", "distance"])


def pool_events(
    events: pd.DataFrame, exclude: pd.Index, start: pd.Timestamp, end: pd.Timestamp
) -> pd.DataFrame:
    """Each other person's first event between ``start`` and ``end``."""
    mine = events.loc[~events[PERSON].isin(exclude)]
    mine = mine.loc[mine["index_date"].between(start, end)]
    return mine.drop_duplicates(PERSON, keep="first")


def covariates(chosen: pd.DataFrame, justice: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Pre-index covariates of each person's index event (indexed by person)."""
    chosen = chosen.set_index(PERSON)
    conv = justice["convictions"][[PERSON, "conviction_date", "disposal"]]
    conv = conv.loc[conv[PERSON].isin(chosen.index)]
    index_conviction = chosen["conviction_date"].reindex(conv[PERSON].to_numpy()).to_numpy()
    before = conv.loc[conv["conviction_date"].to_numpy() < index_conviction]
    counts = pd.DataFrame(
        {
            "prior_convictions": before.groupby(PERSON).size(),
            "prior_custody": (before["disposal"] == CUSTODY).groupby(before[PERSON]).sum(),
            "prior_cautions": (before["disposal"] == "caution").groupby(before[PERSON]).sum(),
        }
    ).reindex(chosen.index, fill_value=0)
    first = before.groupby(PERSON)["conviction_date"].min().reindex(chosen.index)
    first = first.fillna(chosen["conviction_date"])
    demo = justice["demographics"].drop_duplicates(PERSON).set_index(PERSON).reindex(chosen.index)
    born = pd.to_datetime(demo["birth_month"], format="%Y-%m", errors="coerce") + pd.Timedelta(
        days=14
    )
    years = DAYS_PER_YEAR
    career = (chosen["conviction_date"] - first).dt.days / years
    return pd.DataFrame(
        {
            "male": (demo["sex"] == "m").astype("float64").where(demo["sex"].notna()),
            "age_at_index": (chosen["index_date"] - born).dt.days / years,
            "prior_convictions": counts["prior_convictions"].astype("float64"),
            "prior_custody": counts["prior_custody"].astype("float64"),
            "prior_cautions": counts["prior_cautions"].astype("float64"),
            "age_at_first_conviction": (first - born).dt.days / years,
            "copas_rate": np.log((counts["prior_convictions"] + 1) / (career + 10)),
            "index_disposal": chosen["disposal"].astype("string"),
            "index_offence_group": chosen["offence_group"].astype("string"),
            "index_date": chosen["index_date"],
        },
        index=chosen.index,
    )


def benefit_days(index_dates: pd.Series, spells: pd.DataFrame) -> pd.Series:
    """Days on income support in the ``BENEFIT_YEARS`` before each index date (a spell
    without an end is still open)."""
    mine = spells.loc[spells[PERSON].isin(index_dates.index)]
    index = pd.to_datetime(index_dates.reindex(mine[PERSON].to_numpy()).to_numpy())
    since = index - pd.DateOffset(years=BENEFIT_YEARS)
    start = np.maximum(pd.to_datetime(mine["start_date"]).to_numpy(), since.to_numpy())
    ended = pd.to_datetime(mine["end_date"]).to_numpy()
    end = np.where(pd.isna(ended) | (ended > index.to_numpy()), index.to_numpy(), ended)
    days = np.clip((end - start).astype("timedelta64[D]").astype("float64"), 0, None)
    total = pd.Series(days, index=mine[PERSON].to_numpy()).groupby(level=0).sum()
    return total.reindex(index_dates.index, fill_value=0.0).astype("float64")


def covariate_names(justice: Mapping[str, pd.DataFrame]) -> tuple[str, ...]:
    """The covariates these tables support: benefit history only when it is there."""
    return (*COVARIATES, BENEFIT_DAYS) if "benefits" in justice else COVARIATES


def outcomes(index_dates: pd.Series, justice: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Proven reoffending after each index date: offences proven by a conviction."""
    proven = justice["offences"][[PERSON, "offence_id", "offence_date"]].merge(
        justice["convictions"][["offence_id", "conviction_date"]], on="offence_id", how="left"
    )
    proven = proven.rename(columns={"conviction_date": "proven_date", PERSON: "person"})
    return proven_reoffending(index_dates, proven)


def _data_end(justice: Mapping[str, pd.DataFrame]) -> pd.Timestamp:
    """The last day the justice data cover: its latest conviction."""
    return pd.Timestamp(justice["convictions"]["conviction_date"].max())


def _frame(chosen: pd.DataFrame, justice: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    covs = covariates(chosen, justice)
    if "benefits" in justice:
        covs[BENEFIT_DAYS] = benefit_days(covs["index_date"], justice["benefits"])
    result = outcomes(covs["index_date"], justice)
    return covs.drop(columns=["index_date"]).join(result).rename_axis("person_id")


def locate(
    cohort: Cohort,
    zones: Zones,
    *,
    threshold: float | None = None,
    progress: bool = False,
    ctx: Context | None = None,
    actor: str = "datalab",
) -> Located:
    """Identify the cohort in the justice records, locate each person's index event and
    build the cohort and comparison-pool frames with covariates and outcomes.

    The cohort's identifiers are used for matching only: they are not in ``Located``, and
    with ``ctx`` their destruction is audit-logged (counts only) as ``actor``.

    Raises:
        DataLabError: the linkage zone lacks the justice records, model or person index.
    """
    people = cohort.people
    submitted = len(people)
    found, by_id = identify(people, zones, threshold=threshold, progress=progress)
    starts = pd.Series(
        people["intervention_start"].reindex(found.index).to_numpy(), index=found.to_numpy()
    )
    # two submitted rows found to be one person count once: their earliest intervention
    starts = starts.sort_values(kind="stable")
    starts = starts[~starts.index.duplicated(keep="first")]
    del people
    _audit(ctx, actor, submitted)
    justice = load_justice(zones)
    events = index_events(justice)
    mine = cohort_events(events, starts)
    end = _data_end(justice) - pd.Timedelta(days=FOLLOW_UP_DAYS + WAITING_DAYS)
    complete = mine.loc[mine["index_date"] <= end]
    stages = [
        Stage("submitted", submitted, f"{cohort.report.duplicates_merged} repeated rows merged"),
        Stage(
            "identified",
            len(starts),
            f"{submitted - len(found)} not found in the justice records, "
            f"{len(found) - len(starts)} found twice; {by_id} matched by offender id",
        ),
        Stage(
            "index sentence located",
            len(complete),
            f"{len(starts) - len(mine)} with no release, court order or caution within "
            f"{LOOKBACK_DAYS} days before or {LOOKAHEAD_DAYS} after the intervention start; "
            f"{len(mine) - len(complete)} without a full follow-up in the data",
        ),
    ]
    names = covariate_names(justice)
    if complete.empty:
        empty = pd.DataFrame(columns=[*names]).rename_axis("person_id")
        return Located(empty, empty, names, tuple(stages))
    period = complete["index_date"].min(), complete["index_date"].max()
    pool = pool_events(events, pd.Index(starts.index), *period)
    pool = pool.loc[pool["index_date"] <= end]
    return Located(_frame(complete, justice), _frame(pool, justice), names, tuple(stages))


def _audit(ctx: Context | None, actor: str, submitted: int) -> None:
    if ctx is None:
        return
    from enclave.control import audit
    from enclave.control.db import transaction

    with transaction(ctx.engine) as session:
        audit.append(
            session,
            at=ctx.now(),
            actor=actor,
            action=AUDIT_ACTION,
            detail={"people": submitted, "kept": "person ids only"},
        )


__all__ = [
    "BENEFIT_DAYS",
    "COVARIATES",
    "Located",
    "benefit_days",
    "cohort_events",
    "covariate_names",
    "identify",
    "index_events",
    "load_justice",
    "locate",
    "pool_events",
]
