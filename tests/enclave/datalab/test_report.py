"""The evaluation report (spec 8.11-8.13): wording and numbers, charts, annexes, the gates
that refuse a whole report, and that nothing person-level or external gets in."""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import re
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pandas as pd
import pytest
from markupsafe import escape
from PIL import Image

from enclave.datalab.errors import DataLabError, TooFewMatched
from enclave.datalab.evaluate import ENCLAVE_CHOICES, Evaluation, Stage, evaluate
from enclave.datalab.report import RenderedReport, ReportRefused, printed_attrition, render
from enclave.datalab.simulate import COVARIATES, simulate, with_outcomes

PROGRAMME = "Project Phoenix"
EARLIER = (Stage("submitted", 384, "20 rows malformed"), Stage("identified", 364, "20 not found"))


def _request(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A simulated request whose people carry recognisable ids and names (seeds 9 and 4:
    every treated person matched, so the attrition annex has no small losses)."""
    cohort, pool = with_outcomes(simulate(20_000, 300, seed=seed))
    cohort = cohort.assign(
        person=[f"PID{seed}X{i:05d}" for i in range(len(cohort))],
        forename=[f"Zebedee{i:04d}" for i in range(len(cohort))],
    )
    pool = pool.assign(person=[f"PID{seed}C{i:06d}" for i in range(len(pool))])
    return cohort, pool


@pytest.fixture(scope="module")
def request_9() -> tuple[pd.DataFrame, pd.DataFrame]:
    return _request(9)


@pytest.fixture(scope="module")
def significant(request_9: tuple[pd.DataFrame, pd.DataFrame]) -> Evaluation:
    cohort, pool = request_9
    return evaluate(cohort, pool, COVARIATES, programme=PROGRAMME, earlier_stages=EARLIER)


@pytest.fixture(scope="module")
def report(significant: Evaluation) -> RenderedReport:
    return render(significant, programme=PROGRAMME, organisation="Acme Resettlement Trust")


@pytest.fixture(scope="module")
def text(report: RenderedReport) -> str:
    return html.unescape(report.html)


def test_summary_comes_first_then_methodology_then_annexes(report: RenderedReport) -> None:
    places = [report.html.index(f'id="{s}"') for s in ("summary", "methodology", "annex")]
    assert places == sorted(places)
    annexes = [report.html.index(f'id="annex-{a}"') for a in ("outcomes", "balance", "attrition")]
    assert places[2] < annexes[0] < annexes[1] < annexes[2]


def test_the_headline_states_both_groups_rates(
    request_9: tuple[pd.DataFrame, pd.DataFrame], significant: Evaluation, text: str
) -> None:
    cohort, _ = request_9
    assert significant.n_treated == len(cohort)  # everyone matched: the rate is the cohort's
    treated = round(100 * cohort["reoffended"].mean())
    comparison = round(100 * significant.measure("rate").result.mean_comparison)
    assert (
        f"For any 100 typical people in the treatment group, {treated} committed a proven "
        f"reoffence within a one-year period (a rate of {treated}%), compared with "
        f"{comparison} for any 100 typical people in the comparison group."
    ) in text
    for m in significant.measures:
        assert m.headline in text


def test_a_significant_result_gives_direction_and_ci_in_percentage_points(
    significant: Evaluation, text: str
) -> None:
    rate = significant.measure("rate").result
    assert rate.significant and rate.ci_high < 0
    span = re.search(r"were less likely to reoffend .*? (\d+) and (\d+) percentage points", text)
    assert span is not None
    assert [int(span[1]), int(span[2])] == [round(-100 * rate.ci_high), round(-100 * rate.ci_low)]
    assert f"{100 * rate.difference:+.1f} percentage points" in text
    assert f"{100 * rate.ci_low:+.1f} to {100 * rate.ci_high:+.1f} percentage points" in text
    assert "Statistically significant at the 5% level." in text


def test_a_non_significant_result_says_more_people_are_needed() -> None:
    cohort, pool = _request(4)
    result = evaluate(cohort, pool, COVARIATES, programme=PROGRAMME)
    assert not any(m.result.significant for m in result.measures)
    text = html.unescape(render(result, programme=PROGRAMME, organisation="Acme").html)
    assert text.count(f"More people would need to be analysed to determine {PROGRAMME}'s") == 3
    assert text.count("this should not be taken to mean that it has no effect") == 3
    assert "Not statistically significant at the 5% level." in text
    assert "less likely to reoffend" not in text


def test_can_say_and_cannot_say_boxes_for_every_measure(
    significant: Evaluation, report: RenderedReport, text: str
) -> None:
    assert report.html.count("<h4>What you can say</h4>") == len(significant.measures) == 3
    assert report.html.count("<h4>What you cannot say</h4>") == 3
    for m in significant.measures:
        assert m.can_say in text and m.cannot_say in text


def test_charts_are_inline_pngs(report: RenderedReport) -> None:
    uris = re.findall(r'src="(data:image/png;base64,[^"]+)"', report.html)
    assert len(uris) == 4  # one per measure and the balance plot
    assert len(set(uris)) == 4
    for uri in uris:
        png = base64.b64decode(uri.split(",", 1)[1], validate=True)
        with Image.open(io.BytesIO(png)) as image:
            assert image.format == "PNG"
            assert image.width > 300 and image.height > 200


def test_the_outcome_annex_has_sizes_rates_differences_and_p(
    significant: Evaluation, report: RenderedReport
) -> None:
    annex = report.html[report.html.index('id="annex-outcomes"') :]
    for m in significant.measures:
        r = m.result
        assert f"{r.n_treated:,}" in annex
        assert f"{r.n_comparison:,} ({r.effective_n:,.0f})" in annex
    rate = significant.measure("rate").result
    assert f"{100 * rate.mean_treated:.1f}%" in annex
    assert f"{100 * rate.mean_comparison:.1f}%" in annex
    assert f'<td class="n">{rate.p_value:.3f}</td>' in annex


def test_the_balance_annex_rates_every_covariate(
    significant: Evaluation, report: RenderedReport
) -> None:
    annex = report.html[
        report.html.index('id="annex-balance"') : report.html.index('id="annex-attrition"')
    ]
    table = significant.balance.table
    rows = re.findall(r"<tr><td>([^<]+)</td><td class=\"n\">([^<]+)</td>", annex)
    assert [name for name, _ in rows] == list(table.index)
    assert [float(smd) for _, smd in rows] == pytest.approx(
        table["smd_before"].round(3).tolist(), abs=1e-9
    )
    assert 'class="rating poor">poor' in annex  # before matching the groups differ
    after = table["smd_after"].map(lambda s: f'{s:+.3f}</td><td class="rating good">good')
    assert all(cell in annex for cell in after)


def test_the_attrition_annex_lists_each_stage_in_order(
    significant: Evaluation, report: RenderedReport
) -> None:
    annex = report.html[report.html.index('id="annex-attrition"') :]
    stages = [s.stage for s in significant.attrition]
    assert stages[:2] == ["submitted", "identified"] and stages[-1] == "analysed"
    places = [annex.index(f'<td>{s.stage}</td><td class="n">{s.count:,}</td>') for s in
              significant.attrition]  # fmt: skip
    assert places == sorted(places)
    assert '<td class="n">20</td><td>20 not found</td>' in annex


def test_the_enclaves_own_choices_are_labelled(report: RenderedReport, text: str) -> None:
    for value in ENCLAVE_CHOICES.values():
        assert str(escape(value)) in report.html
    assert text.count("Enclave's choice") == len(ENCLAVE_CHOICES)
    assert "not of the Justice Data Lab" in text


def test_no_person_level_data_in_the_report(
    request_9: tuple[pd.DataFrame, pd.DataFrame], report: RenderedReport
) -> None:
    cohort, pool = request_9
    found = [p for p in [*cohort["person"], *cohort["forename"], *pool["person"].head(5000)]
             if p in report.html]  # fmt: skip
    assert found == []
    assert "PID9" not in report.html and "Zebedee" not in report.html


def test_the_html_loads_nothing_from_outside(report: RenderedReport) -> None:
    assert "http://" not in report.html and "https://" not in report.html
    sources = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]+)""", report.html)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "url(" not in report.html and "@import" not in report.html


def test_names_cannot_inject_markup(significant: Evaluation) -> None:
    attack = '<img src="http://127.0.0.1:9/x.png"><script>alert(1)</script>'
    result = render(significant, programme=attack, organisation=attack)
    assert "<script>" not in result.html and '<img src="http' not in result.html
    assert "&lt;script&gt;" in result.html


def test_the_counts_were_checked(significant: Evaluation, report: RenderedReport) -> None:
    checked = {c.what: c for c in report.checks}
    assert checked["treatment group"].count == significant.n_treated
    assert checked["comparison group"].count == significant.n_comparison
    assert checked["attrition, people lost at stage 'identified'"].count == 20
    assert all(c.status in {"pass", "review"} for c in report.checks)
    assert all(c.record["kind"] == "table" for c in report.checks)


def test_an_unbalanced_evaluation_is_refused(request_9: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """A caliper of 100 SD takes in everyone, so matching removes no imbalance."""
    cohort, pool = request_9
    unbalanced = evaluate(cohort, pool, COVARIATES, caliper_sd=100.0)
    assert not unbalanced.publishable
    with pytest.raises(DataLabError, match=r"^refused: balance blocks publication") as refused:
        render(unbalanced, programme=PROGRAMME, organisation="Acme")
    assert all(name in str(refused.value) for name in unbalanced.balance.poor_after)


def test_fewer_than_60_matched_is_refused_with_the_counts(significant: Evaluation) -> None:
    small = dataclasses.replace(significant, n_treated=36)
    with pytest.raises(TooFewMatched, match=r"^refused: 36 matched treated people \(of 384"):
        render(small, programme=PROGRAMME, organisation="Acme")


def test_a_small_loss_is_folded_into_the_next_stage_of_the_annex(
    request_9: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    cohort, pool = request_9
    located = len(cohort)
    stages = (
        Stage("submitted", located + 24, ""),
        Stage("identified", located + 20, "4 not found"),  # 4: too few to print
    )
    result = evaluate(cohort, pool, COVARIATES, earlier_stages=stages)
    report = render(result, programme=PROGRAMME, organisation="Acme")
    annex = report.html[report.html.index('id="annex-attrition"') :]
    assert ">identified<" not in annex and f"{located + 20:,}" not in annex
    assert "4 not found" in annex  # the reason stays, joined to the next printed stage's
    losses = [c.count for c in report.checks if c.what.startswith("attrition, people lost")]
    assert losses and min(losses) >= 10


def test_attrition_folds_small_losses_forward_and_at_the_end_backward() -> None:
    def passes(n: int) -> bool:
        return n == 0 or n >= 10

    stages = [
        Stage("submitted", 300, ""),
        Stage("identified", 297, "3 not found"),
        Stage("located", 250, "no index event"),
        Stage("matched", 248, "no match in caliper"),
        Stage("analysed", 246, "outcome missing"),
    ]
    printed = printed_attrition(stages, passes)
    assert [(s.stage, s.count) for s in printed] == [("submitted", 300), ("analysed", 246)]
    assert printed[1].reason == "3 not found; no index event; no match in caliper; outcome missing"
    plain = [Stage("submitted", 300, ""), Stage("located", 280, "a"), Stage("analysed", 260, "b")]
    assert printed_attrition(plain, passes) == plain
    tail = [Stage("submitted", 300, ""), Stage("located", 280, "a"), Stage("analysed", 275, "b")]
    assert [(s.stage, s.count) for s in printed_attrition(tail, passes)] == [
        ("submitted", 300),
        ("analysed", 275),
    ]


def test_a_small_loss_from_submission_to_analysis_is_refused(
    request_9: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    cohort, pool = request_9
    analysed = evaluate(cohort, pool, COVARIATES).n_treated
    stages = (Stage("submitted", analysed + 4, "4 rows malformed"),)
    result = evaluate(cohort, pool, COVARIATES, earlier_stages=stages)
    with pytest.raises(ReportRefused, match=r"= 4: threshold") as no:
        render(result, programme=PROGRAMME, organisation="Acme")
    assert no.value.rules == ["threshold"]


def test_a_comparison_group_too_small_for_the_checker_is_refused(
    significant: Evaluation,
) -> None:
    tiny = dataclasses.replace(significant, n_comparison=7)
    with pytest.raises(ReportRefused, match=r"comparison group = 7: threshold \(fewer than 10"):
        render(tiny, programme=PROGRAMME, organisation="Acme")


def test_a_rate_from_two_reoffenders_is_refused(significant: Evaluation) -> None:
    rate = significant.measure("rate")
    two = dataclasses.replace(rate.result, mean_treated=2 / rate.result.n_treated)
    measures = tuple(
        dataclasses.replace(m, result=two) if m.measure == "rate" else m
        for m in significant.measures
    )
    with pytest.raises(ReportRefused, match="people who reoffended = 2") as refused:
        render(dataclasses.replace(significant, measures=measures), programme="P", organisation="O")
    assert "nk" in refused.value.rules


def test_names_are_required(significant: Evaluation) -> None:
    with pytest.raises(DataLabError, match="the organisation must be named"):
        render(significant, programme=PROGRAMME, organisation="  ")


@pytest.mark.slow
def test_the_pdf_is_rendered(report: RenderedReport) -> None:
    pdf = report.pdf()
    assert pdf.startswith(b"%PDF-")
    assert pdf.rstrip().endswith(b"%%EOF")
    objects = b"".join(_inflated(pdf))
    assert len(re.findall(rb"/Type\s*/Page\b", objects)) >= 4
    assert len(re.findall(rb"/Subtype\s*/Image", objects)) >= 4  # each PNG, maybe its alpha mask


def _inflated(pdf: bytes) -> Iterator[bytes]:
    """The PDF's objects, with its compressed streams (object streams included) inflated."""
    yield pdf
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, flags=re.DOTALL):
        try:
            yield zlib.decompress(stream)
        except zlib.error:
            continue  # not Flate (an image in another encoding): nothing to find in it


class _Counting(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Counting.hits.append(self.path)
        self.send_response(404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def listener() -> Iterator[tuple[str, list[str]]]:
    server = HTTPServer(("127.0.0.1", 0), _Counting)
    _Counting.hits = []
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", _Counting.hits
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "markup",
    [
        '<img src="{url}/image.png">',
        '<link rel="stylesheet" href="{url}/style.css">',
        '<p style="background: url({url}/background.png)">x</p>',
    ],
)
def test_the_pdf_never_fetches_an_external_resource(
    listener: tuple[str, list[str]], markup: str
) -> None:
    url, hits = listener
    planted = RenderedReport(
        html=f"<html><body>{markup.format(url=url)}<p>report</p></body></html>"
    )
    with pytest.raises(DataLabError, match="refers to a resource outside itself"):
        planted.pdf()
    assert hits == []


def test_the_pdf_never_reads_a_local_file() -> None:
    planted = RenderedReport(html='<html><body><img src="file:///etc/hostname"></body></html>')
    with pytest.raises(DataLabError, match="refers to a resource outside itself"):
        planted.pdf()
