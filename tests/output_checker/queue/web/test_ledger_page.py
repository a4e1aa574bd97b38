"""The file page shows the differencing audit: which earlier release, which cells, how many
people the difference isolates, and the mitigations with their cost."""

from __future__ import annotations

import re

from enclave.control.context import Context
from output_checker.queue import service
from output_checker.queue.workflow import Status
from tests.enclave.control.web.conftest import Web
from tests.output_checker.queue.factories import (
    QueueWorld,
    add_output,
    make_request,
    recipe_output,
    table_output,
)

NOT_90 = {"column": "age", "op": "!=", "value": "90+"}


def _table(page: str, table_id: str) -> str:
    found = re.search(rf'<table id="{table_id}">(.*?)</table>', page, re.S)
    assert found, f"no table {table_id}"
    return found.group(1)


def test_the_file_page_shows_the_findings_and_the_mitigations(
    ctx: Context, qw: QueueWorld, web: Web
) -> None:
    earlier = make_request(
        ctx, qw, Status.RELEASED, outputs=(recipe_output(qw, "all-clients.csv"),), title="Beds"
    )
    rid = service.create_request(ctx, qw.author, project=qw.project, title="New").id
    fid = add_output(ctx, qw, rid, recipe_output(qw, "not-90.csv", filters=(NOT_90,)))
    web.login(qw.author)
    page = web.page(f"/requests/{rid}/files/{fid}")
    findings = _table(page, "differencing-findings")
    assert "all-clients.csv in “Beds”" in findings and f"/requests/{earlier}" in findings
    assert re.search(r"<td>west \(count\)</td>.*<td>3 \(one population contains", findings, re.S)
    offers = _table(page, "ledger-mitigations")
    assert "round to base 10" in offers.lower() and "yes" in offers


def test_an_output_without_a_recipe_says_it_was_not_checked(
    ctx: Context, qw: QueueWorld, web: Web
) -> None:
    rid = service.create_request(ctx, qw.author, project=qw.project, title="New").id
    fid = add_output(ctx, qw, rid, table_output(qw, with_recipe=False))
    web.login(qw.author)
    page = web.page(f"/requests/{rid}/files/{fid}")
    section = re.search(r'<section id="differencing">(.*?)</section>', page, re.S)
    assert section and "Not checked against earlier releases" in section.group(1)
