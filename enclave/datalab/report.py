"""The evaluation's report (spec 8.11-8.13): summary, methodology, annex tables and charts,
as self-contained HTML (charts inline, no external resource) and as a PDF.

The report is produced whole or not at all. ``render`` refuses, before drawing anything, when
fewer than 60 treated people were matched, when balance blocks publication, or when any count
the report prints fails the output checker; a refusal's message carries counts, covariate
names and rule names only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from enclave.datalab import charts, wording
from enclave.datalab.balance import ACCEPTABLE, GOOD
from enclave.datalab.errors import DataLabError, TooFewMatched
from enclave.datalab.evaluate import (
    ENCLAVE_CHOICES,
    MINIMUM_MATCHED,
    Evaluation,
    MeasureResult,
    Stage,
)
from enclave.datalab.outcomes import FOLLOW_UP_DAYS, WAITING_DAYS
from output_checker import Parameters, Status, TableResult, check_table


@dataclass(frozen=True)
class _Display:
    """How one measure is shown: values times ``scale``, in ``unit``."""

    scale: float
    unit: str
    difference_unit: str
    axis: str


_DISPLAY: dict[wording.Measure, _Display] = {
    "rate": _Display(100, "%", " percentage points", "people who reoffended (%)"),
    "frequency": _Display(
        100, " per 100 people", " offences per 100 people", "proven reoffences per 100 people"
    ),
    "time": _Display(1, " days", " days", "days to first proven reoffence"),
}
_CHOICE_NAMES = {
    "caliper": "Caliper",
    "common_support": "Common support",
    "smd_bands": "Balance bands and publication limit",
    "waiting_period": "Waiting period for a proven reoffence",
    "time_to_reoffence": "Time to first proven reoffence",
}


class ReportRefused(DataLabError):
    """A count in the report fails the output checker: no report is produced."""

    def __init__(self, what: str, count: int, rules: list[tuple[str, str]]) -> None:
        self.what, self.count, self.rules = what, count, [rule for rule, _ in rules]
        failing = "; ".join(f"{rule} ({description})" for rule, description in rules)
        super().__init__(
            f"refused: a count in the report fails the output checker: {what} = {count}: "
            f"{failing}; no report is produced"
        )


@dataclass(frozen=True, eq=False)
class CheckedCount:
    """One number of the report as the output checker saw it; ``record`` is its manifest."""

    what: str
    count: int
    status: str
    record: dict[str, Any]


@dataclass(frozen=True, eq=False)
class RenderedReport:
    """The whole report: ``html`` is self-contained; ``checks`` are the checker's verdicts on
    its counts (pass, or review for the queue's reviewers)."""

    html: str
    checks: tuple[CheckedCount, ...] = ()

    def pdf(self) -> bytes:
        """The report as PDF. Only inline ``data:`` resources are loaded: a reference to
        anything else stops the rendering instead of being fetched."""
        from weasyprint import HTML  # type: ignore[import-untyped]
        from weasyprint.urls import FatalURLFetchingError, URLFetcher  # type: ignore[import-untyped]

        fetcher = URLFetcher(allowed_protocols={"data"}, fail_on_errors=True)
        try:
            document = HTML(string=self.html, url_fetcher=fetcher).write_pdf()
        except FatalURLFetchingError:
            raise DataLabError(
                "refused: the report refers to a resource outside itself; nothing was fetched"
            ) from None
        assert document is not None  # write_pdf returns bytes when given no target
        return bytes(document)


def render(
    evaluation: Evaluation,
    *,
    programme: str,
    organisation: str,
    parameters: Parameters | None = None,
) -> RenderedReport:
    """The report of ``evaluation`` for ``organisation``'s ``programme``.

    ``parameters`` are the project's output-checker parameters (the default conventions'
    otherwise). Raises ``TooFewMatched`` under 60 matched treated people, ``DataLabError``
    when balance blocks publication or a name is empty, and ``ReportRefused`` when a count
    fails the checker.
    """
    programme, organisation = _named(programme, "programme"), _named(organisation, "organisation")
    refuse_unpublishable(evaluation)
    chosen = parameters or Parameters()
    attrition = printed_attrition(evaluation.attrition, lambda n: _passes_checker(n, chosen))
    checks = check_counts(evaluation, chosen, attrition)
    html = _template().render(**_view(evaluation, programme, organisation, attrition))
    return RenderedReport(html=html, checks=checks)


def _named(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DataLabError(f"the {what} must be named")
    return value.strip()


def refuse_unpublishable(evaluation: Evaluation) -> None:
    """The gates the evaluation itself must pass: the minimum size (for every measure) and
    balance."""
    treated = min([evaluation.n_treated, *(m.result.n_treated for m in evaluation.measures)])
    if treated < MINIMUM_MATCHED:
        submitted = evaluation.attrition[0].count if evaluation.attrition else treated
        raise TooFewMatched(treated, submitted, MINIMUM_MATCHED)
    if not evaluation.publishable:
        blocking = evaluation.balance.poor_after or ["a covariate with an undefined SMD"]
        raise DataLabError(
            f"refused: balance blocks publication: |SMD| after matching exceeds {ACCEPTABLE} "
            f"(max {evaluation.balance.max_abs_after:.3f}) for {', '.join(blocking)}"
        )


# ----- disclosure control --------------------------------------------------------------------


def printed_attrition(stages: Sequence[Stage], passes: Callable[[int], bool]) -> list[Stage]:
    """The attrition annex as it may be printed: a stage whose loss from the stage printed
    before it is a count the checker refuses (``passes`` is False) is folded into the next
    stage, reasons joined, so no small loss can be read by subtraction; at the last stage,
    the stage printed before it is folded instead. A small loss between the first and the
    last stage remains, and the checker refuses the report for it."""
    if not stages:
        return []
    kept: list[Stage] = [stages[0]]
    folded: list[Stage] = []
    for stage in stages[1:-1]:
        if passes(kept[-1].count - stage.count):
            kept.append(_with_reasons(stage, folded))
            folded = []
        else:
            folded.append(stage)
    if len(stages) > 1:
        last = stages[-1]
        while len(kept) > 1 and not passes(kept[-1].count - last.count):
            folded = [kept.pop(), *folded]
        kept.append(_with_reasons(last, folded))
    return kept


def _with_reasons(stage: Stage, folded: Sequence[Stage]) -> Stage:
    reasons = [s.reason for s in (*folded, stage) if s.reason]
    return Stage(stage.stage, stage.count, "; ".join(reasons))


def _passes_checker(count: int, parameters: Parameters) -> bool:
    return (
        count == 0
        or check_table(
            _people(count), index="group", conventions=parameters.conventions, parameters=parameters
        ).status
        != Status.FAIL
    )


def _printed_counts(
    evaluation: Evaluation, attrition: Sequence[Stage]
) -> Iterator[tuple[str, int]]:
    """Every count of people the report prints, or lets a reader derive by subtraction."""
    yield "treatment group", evaluation.n_treated
    yield "comparison group", evaluation.n_comparison
    for m in evaluation.measures:
        yield f"treatment group ({m.measure} measure)", m.result.n_treated
        yield f"comparison group ({m.measure} measure)", m.result.n_comparison
    previous: int | None = None
    for stage in attrition:
        yield f"attrition, people at stage '{stage.stage}'", stage.count
        if previous is not None:
            yield f"attrition, people lost at stage '{stage.stage}'", previous - stage.count
        previous = stage.count


def _people(count: int) -> pd.DataFrame:
    """``count`` rows of one category: the microdata the checker tabulates into exactly this
    one-cell count (it tabulates rows itself; there is no API for a ready-made count)."""
    return pd.DataFrame({"group": np.zeros(count, dtype=np.int8)})


def _verdict(what: str, count: int, result: TableResult) -> CheckedCount:
    if result.status == Status.FAIL:
        shown = result.shown
        failing = [
            (rule.rule, rule.description)
            for rule in result.rules.values()
            if (rule.status[shown] == Status.FAIL).any()
        ]
        raise ReportRefused(what, count, failing)
    return CheckedCount(what, count, result.status.label, result.to_dict())


def check_counts(
    evaluation: Evaluation, parameters: Parameters, attrition: Sequence[Stage]
) -> tuple[CheckedCount, ...]:
    """Run every count of people in the report through the output checker, and the treated
    group's reoffending rate as the checker's 'mean' output (its type for indicators: as a
    two-cell frequency table, the class-disclosure rule would refuse every rate under 10 % or
    over 90 %). Raises ``ReportRefused`` naming the count and the failing rules.

    Each count is its own one-cell frequency table: a group's size says nothing about any
    other category, so the class-disclosure rule (which compares cells within a table) has
    nothing to compare. A zero count has no contributors and is not checked. The comparison
    group's outcomes are weighted means over non-integer weights, which imply no count of
    people, so only its size is checked.
    """
    checked: list[CheckedCount] = []
    seen: set[int] = set()
    for what, count in _printed_counts(evaluation, attrition):
        if count < 0:
            raise DataLabError(f"the report's {what} is negative ({count})")
        if count == 0 or count in seen:
            continue
        seen.add(count)
        result = check_table(
            _people(count), index="group", conventions=parameters.conventions,
            parameters=parameters,
        )  # fmt: skip
        checked.append(_verdict(what, count, result))
    rate = evaluation.measure("rate").result
    reoffenders = round(rate.mean_treated * rate.n_treated)
    frame = _people(rate.n_treated).assign(
        reoffended=(np.arange(rate.n_treated) < reoffenders).astype("float64")
    )
    result = check_table(
        frame, index="group", values="reoffended", aggfunc="mean",
        conventions=parameters.conventions, parameters=parameters,
    )  # fmt: skip
    checked.append(_verdict("treatment group, people who reoffended", reoffenders, result))
    return tuple(checked)


# ----- presentation --------------------------------------------------------------------------


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("enclave.datalab", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _template() -> Any:
    return _environment().get_template("report.html")


@cache
def _css() -> Markup:
    environment = _environment()
    assert environment.loader is not None
    source, _, _ = environment.loader.get_source(environment, "report.css")
    return Markup(source)  # our own package file, not user input


def _number(x: float, digits: int = 1, sign: bool = False) -> str:
    if not math.isfinite(x):
        return "n/a"
    return f"{x:{'+' if sign else ''},.{digits}f}"


def _p(p: float) -> str:
    if not math.isfinite(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _interval(bounds: tuple[float, float], scale: float, unit: str, sign: bool = False) -> str:
    low, high = (_number(scale * b, sign=sign) for b in bounds)
    return f"{low} to {high}{unit}"


def _measure_view(m: MeasureResult, programme: str) -> dict[str, Any]:
    shown, r = _DISPLAY[m.measure], m.result
    title = wording.MEASURE_NAMES[m.measure].capitalize()
    chart = charts.groups_chart(
        title,
        shown.axis,
        (shown.scale * r.mean_treated, shown.scale * r.mean_comparison),
        (
            (shown.scale * r.treated_ci[0], shown.scale * r.treated_ci[1]),
            (shown.scale * r.comparison_ci[0], shown.scale * r.comparison_ci[1]),
        ),
    )
    significant = r.significant
    level = f"{100 * r.alpha:g}%"
    return {
        "key": m.measure,
        "title": title,
        "headline": m.headline,
        "finding": wording.finding(m.measure, r, programme),
        "can_say": wording.can_say(m.measure, r, programme),
        "cannot_say": wording.cannot_say(m.measure, r, programme),
        "significant": significant,
        "verdict": f"Statistically significant at the {level} level."
        if significant
        else f"Not statistically significant at the {level} level.",
        "difference": _number(shown.scale * r.difference, sign=True) + shown.difference_unit,
        "ci": _interval((r.ci_low, r.ci_high), shown.scale, shown.difference_unit, sign=True),
        "p": _p(r.p_value),
        "treated": _number(shown.scale * r.mean_treated) + shown.unit,
        "treated_ci": _interval(r.treated_ci, shown.scale, shown.unit),
        "comparison": _number(shown.scale * r.mean_comparison) + shown.unit,
        "comparison_ci": _interval(r.comparison_ci, shown.scale, shown.unit),
        "n_treated": f"{r.n_treated:,}",
        "n_comparison": f"{r.n_comparison:,}",
        "effective_n": _number(r.effective_n, 0),
        "chart": charts.data_uri(chart),
    }


def _smd(x: float) -> str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return _number(x, 3, sign=True)


def _method_notes(evaluation: Evaluation, confidence: str) -> list[str]:
    covariates = list(dict.fromkeys(str(c).split("=")[0] for c in evaluation.balance.table.index))
    if evaluation.mode == "radius":
        matching = (
            "every comparison person whose logit propensity score lies within the caliper of a "
            "treated person's (radius matching)"
        )
    else:
        matching = f"the {evaluation.k} nearest comparison people within the caliper"
    alpha = evaluation.measures[0].result.alpha
    return [
        "The people the organisation submitted were located in the national offending records "
        "by identity linkage, and for each the index event relevant to the intervention "
        "(release from custody, start of a court order or a caution) was located.",
        "A comparison group of similar people who did not take part was built by propensity "
        "score matching. An unpenalised logistic regression modelled taking part on these "
        f"characteristics, measured before the index date: {', '.join(covariates)}.",
        "People who took part whose propensity score lay outside the range of the comparison "
        "pool were dropped (common support). Each remaining person was matched, with "
        f"replacement, to {matching}; the caliper was {evaluation.caliper:.3f} logit units. "
        "A person with nobody inside the caliper was not analysed (see Annex C).",
        "Each treated person has weight 1; a comparison person's weight is the sum of 1/m over "
        "the treated people it serves, m being the size of that person's matched set, so the "
        "comparison group estimates what would have happened to the treatment group without "
        "the programme.",
        f"A proven reoffence is an offence committed within {FOLLOW_UP_DAYS} days of the index "
        "date and proven by a conviction, caution, reprimand or warning within that year or a "
        f"further {WAITING_DAYS}-day waiting period.",
        "Each measure was compared with a weighted Welch t-test of the treatment group minus "
        "the weighted comparison group, with comparison weights rescaled to their effective "
        f"size; {confidence} confidence intervals and two-sided p-values at alpha = {alpha:g} "
        "are shown, unadjusted for multiple comparisons.",
    ]


def _view(
    evaluation: Evaluation, programme: str, organisation: str, printed: Sequence[Stage]
) -> dict[str, Any]:
    alpha = evaluation.measures[0].result.alpha
    confidence = f"{100 * (1 - alpha):g}%"
    table = evaluation.balance.table
    balance_rows = [
        {
            "covariate": str(name),
            "before": _smd(float(row["smd_before"])),
            "after": _smd(float(row["smd_after"])),
            "rating_before": str(row["rating_before"]),
            "rating_after": str(row["rating_after"]),
        }
        for name, row in table.iterrows()  # one row per covariate, a few dozen at most
    ]
    balance_png = charts.balance_chart(
        [str(c) for c in table.index],
        table["smd_before"].to_numpy(),
        table["smd_after"].to_numpy(),
        GOOD,
        ACCEPTABLE,
    )
    counts = [s.count for s in printed]
    attrition = [
        {
            "stage": s.stage,
            "count": f"{s.count:,}",
            "lost": "" if i == 0 else f"{counts[i - 1] - s.count:,}",
            "reason": s.reason,
        }
        for i, s in enumerate(printed)
    ]
    return {
        "css": _css(),
        "programme": programme,
        "organisation": organisation,
        "confidence": confidence,
        "sizes": (
            f"The treatment group is the {evaluation.n_treated:,} people who took part in "
            f"{programme} and could be matched. The comparison group is "
            f"{evaluation.n_comparison:,} similar people who did not take part, weighted to "
            f"resemble them (an effective size of {_number(evaluation.effective_n, 0)})."
        ),
        "measures": [_measure_view(m, programme) for m in evaluation.measures],
        "method_notes": _method_notes(evaluation, confidence),
        "time_caveat": (
            "Measuring time to first reoffence among reoffenders only would condition on an "
            "outcome of the programme and can be biased. This report instead uses the "
            f"restricted mean time to first proven reoffence over the whole matched cohort, "
            f"censored at {FOLLOW_UP_DAYS} days: people who did not reoffend count as the "
            "whole year."
        ),
        "choices": [
            {"name": _CHOICE_NAMES.get(key, key.replace("_", " ").capitalize()), "value": value}
            for key, value in ENCLAVE_CHOICES.items()
        ],
        "good": f"{GOOD:g}",
        "acceptable": f"{ACCEPTABLE:g}",
        "balance": balance_rows,
        "balance_chart": charts.data_uri(balance_png),
        "attrition": attrition,
    }
