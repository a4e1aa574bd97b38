"""The review pages through Flask's test client: the overview, the request and file pages as
checkers and authors see them (blinding and the checker-only evidence are the service's; the
pages must show exactly what it returns), safe rendering of every file type, diffs, activity
and the released download."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from enclave.control.context import Context
from output_checker import check_table
from output_checker.queue import release, service
from output_checker.queue.workflow import Status
from tests.enclave.control.factories import FakeClock
from tests.output_checker.queue.factories import (
    Output,
    QueueWorld,
    dataset_frame,
    make_request,
    passing_output,
)
from tests.output_checker.queue.web.conftest import AsPerson
from tests.output_checker.queue.web.helpers import (
    PNG,
    add_output,
    add_plain,
    file_id,
    with_failing,
)

FAIL_CELL = re.compile(r'<td class="cell-fail" data-status="fail" title="([^"]*)"[^>]*>3</td>')


def _page(client: FlaskClient, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.get_data(as_text=True)


def test_the_overview_shows_ages_filters_and_reviewer_load(
    ctx: Context, qw: QueueWorld, client: FlaskClient, as_person: AsPerson, clock: FakeClock
) -> None:
    submitted = make_request(ctx, qw, Status.SUBMITTED, title="Beds by region")
    pending = make_request(ctx, qw, Status.PENDING, title="Draft")
    detail = service.get_request(ctx, qw.checker_a, submitted)
    service.vote(ctx, qw.checker_a, submitted, detail.files[0].id, "approve")
    clock.advance(days=6)
    as_person(client, qw.checker_b)
    page = _page(client, "/requests")
    assert "Beds by region" in page and "Draft" not in page  # checkers see submitted ones
    assert "6 d 0 h" in page and "overdue" in page  # beyond the 5-day target
    load = page[page.index('id="reviewer-load"') :]
    assert qw.checker_a in load and "<td>1</td>" in load
    assert "Beds by region" not in _page(client, "/requests?status=returned")
    assert "Beds by region" in _page(client, "/requests?status=submitted&project=study")
    assert "Beds by region" not in _page(client, "/requests?project=other")
    as_person(client, qw.author)
    page = _page(client, "/requests")
    assert "Draft" in page and "Beds by region" in page and f"/requests/{pending}" in page
    assert 'id="reviewer-load"' not in page  # not a checker
    assert 'id="new-request"' in page  # a researcher may open one


def test_a_checker_sees_failing_cells_highlighted_with_rule_and_evidence(
    ctx: Context, qw: QueueWorld, client: FlaskClient, as_person: AsPerson
) -> None:
    rid = with_failing(ctx, qw)
    fid = file_id(ctx, qw, rid, "by-age.csv")
    as_person(client, qw.checker_a)
    page = _page(client, f"/requests/{rid}/files/{fid}")
    (note,) = FAIL_CELL.findall(page)
    assert "threshold fail" in note and "n=3" in note and "n_rows=3" in note
    assert 'id="flagged-cells"' in page and "<td>90+</td>" in page
    assert "fewer than 10 contributors" in page  # the rule's description, in the result panel
    as_person(client, qw.author)
    page = _page(client, f"/requests/{rid}/files/{fid}")
    assert "cell-fail" not in page and "n_rows" not in page  # the evidence is checkers' only
    assert "<td>3</td>" in page  # the number itself is the author's own output


def test_protected_tables_show_suppressed_cells_and_their_intervals(
    ctx: Context, qw: QueueWorld, client: FlaskClient, as_person: AsPerson
) -> None:
    result = check_table(dataset_frame(), ["region", "age"], ["sex"], margins=True, protect=True)
    protected = Output("protected.csv", result.to_frame().to_csv().encode(), result.to_dict(), None)
    rid = make_request(ctx, qw, outputs=())
    fid = add_output(ctx, qw, rid, protected)
    service.set_exception(ctx, qw.author, rid, fid, "protected by suppression")
    service.set_group(ctx, qw.author, rid, "tables", context="c", controls="suppression")
    service.submit(ctx, qw.author, rid)
    as_person(client, qw.checker_a)
    page = _page(client, f"/requests/{rid}/files/{fid}")
    assert 'id="protection"' in page and "exact" in page
    assert page.count("cell-suppressed") >= 6
    assert "audit interval [0, 25]" in page  # on hover
    assert "west / 18-64 × f" in page and "[0, 25]" in page  # in the protection table


def test_images_are_inline_and_html_and_svg_are_sandboxed_without_scripts(
    ctx: Context, qw: QueueWorld, client: FlaskClient, as_person: AsPerson
) -> None:
    rid = make_request(ctx, qw)
    png = add_plain(ctx, qw, rid, "plot.png", PNG)
    html = add_plain(ctx, qw, rid, "report.html", b"<h1>Hi</h1><script>parent.x=1</script>")
    svg = add_plain(
        ctx, qw, rid, "chart.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script/></svg>'
    )
    as_person(client, qw.author)
    page = _page(client, f"/requests/{rid}/files/{png}")
    assert f'<img class="content" src="/requests/{rid}/files/{png}/content"' in page
    image = client.get(f"/requests/{rid}/files/{png}/content")
    assert image.data == PNG and image.content_type == "image/png"
    for fid, media in ((html, "text/html"), (svg, "image/svg+xml")):
        page = _page(client, f"/requests/{rid}/files/{fid}")
        (frame,) = re.findall(r"<iframe[^>]*>", page)
        assert re.search(r"\ssandbox[\s>]", frame) and "allow-scripts" not in frame
        content = client.get(f"/requests/{rid}/files/{fid}/content")
        assert content.content_type.startswith(media)
        policy = content.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "sandbox" in policy
        assert "script-src" not in policy  # so scripts fall back to 'none'
        assert content.headers["X-Frame-Options"] == "SAMEORIGIN"
    main = client.get(f"/requests/{rid}/files/{html}")
    assert main.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in main.headers["Content-Security-Policy"]


def test_markdown_text_and_comments_are_rendered_without_script(
    ctx: Context, qw: QueueWorld, client: FlaskClient, as_person: AsPerson
) -> None:
    rid = make_request(ctx, qw)
    attack = (
        b"# Notes\n\n<script>alert(1)</script>\n\n[click](javascript:alert(2))\n\n"
        b'<img src=x onerror="alert(3)">\n\n**bold**'
    )
    md = add_plain(ctx, qw, rid, "notes.md", attack)
    txt = add_plain(ctx, qw, rid, "log.txt", b"<script>alert(4)</script>")
    service.comment(ctx, qw.author, rid, body="<script>alert(5)</script> *fine*", group="tables")
    as_person(client, qw.author)
    page = _page(client, f"/requests/{rid}/files/{md}")
    view = page[page.index('id="markdown-view"') :].split("</div>")[0]
    assert "<script>alert" not in page
    assert "<h1>Notes</h1>" in view and "<strong>bold</strong>" in view
    assert "<script" not in view and 'href="javascript:' not in view
    assert "<img" not in view  # raw HTML in markdown stays text
    page = _page(client, f"/requests/{rid}/files/{txt}")
    assert "&lt;script&gt;alert(4)" in page and "<script>alert(4)" not in page
    page = _page(client, f"/requests/{rid}")
    assert "<em>fine</em>" in page and "<script>alert(5)" not in page


def test_a_diff_shows_the_cells_that_changed_between_versions(
    ctx: Context, qw: QueueWorld, client: FlaskClient, as_person: AsPerson
) -> None:
    rid = make_request(ctx, qw, Status.RETURNED)
    fid = service.get_request(ctx, qw.author, rid).files[0].id
    old = service.view_file(ctx, qw.author, rid, fid).data.decode()
    new = old.replace("east,50", "east,55").encode()
    service.update_file(ctx, qw.author, rid, fid, data=new)
    service.resubmit(ctx, qw.author, rid, comment="east recounted")
    as_person(client, qw.checker_b)
    page = _page(client, f"/requests/{rid}/files/{fid}")
    assert f"/requests/{rid}/files/{fid}/diff" in page
    diff = _page(client, f"/requests/{rid}/files/{fid}/diff")
    changes = diff[diff.index('id="cell-changes"') :]
    assert re.search(r"<td>east</td><td>count</td><td>50</td><td>55</td>", changes)
    assert changes.count("<tr>") == 2  # the header and the one changed cell


def test_a_text_diff_is_unified(
    ctx: Context, qw: QueueWorld, client: FlaskClient, as_person: AsPerson
) -> None:
    rid = make_request(ctx, qw)
    fid = add_plain(ctx, qw, rid, "log.txt", b"one\ntwo\n")
    service.update_file(ctx, qw.author, rid, fid, data=b"one\nthree\n")
    as_person(client, qw.author)
    diff = _page(client, f"/requests/{rid}/files/{fid}/diff")
    assert '<span class="del">-two</span>' in diff and '<span class="add">+three</span>' in diff


def test_blinding_is_the_services_the_pages_show_only_what_it_returns(
    ctx: Context, qw: QueueWorld, client: FlaskClient, as_person: AsPerson
) -> None:
    rid = make_request(ctx, qw, Status.SUBMITTED)
    fid = service.get_request(ctx, qw.author, rid).files[0].id
    service.vote(ctx, qw.checker_a, rid, fid, "request_changes", comment="round to 5")
    service.comment(
        ctx, qw.checker_a, rid, body="A's private note", group="tables", visibility="private"
    )
    as_person(client, qw.checker_b)
    page = _page(client, f"/requests/{rid}")
    assert 'id="blinded"' in page and "A's private note" not in page
    assert "round to 5" not in _page(client, f"/requests/{rid}/files/{fid}")
    as_person(client, qw.author)
    page = _page(client, f"/requests/{rid}")
    assert "A's private note" not in page and "submitted" in page
    as_person(client, qw.checker_a)
    assert "A's private note" in _page(client, f"/requests/{rid}")


def test_activity_lists_visible_events(
    ctx: Context, qw: QueueWorld, client: FlaskClient, as_person: AsPerson
) -> None:
    rid = make_request(ctx, qw, Status.SUBMITTED)
    as_person(client, qw.checker_a)
    _page(client, f"/requests/{rid}")  # audited as a view
    events = re.compile(r"<td>\d+</td><td>[^<]*</td><td>[^<]*</td><td>([^<]*)</td>")
    shown = events.findall(_page(client, f"/requests/{rid}/activity"))
    assert "request submit" in shown and "view" not in shown
    assert "view" in events.findall(_page(client, f"/requests/{rid}/activity?reads=1"))


def test_released_files_download_the_reviewed_bytes_until_revoked(
    ctx: Context, qw: QueueWorld, client: FlaskClient, as_person: AsPerson
) -> None:
    rid = make_request(ctx, qw, Status.APPROVED, outputs=(passing_output(qw),))
    fid = service.get_request(ctx, qw.author, rid).files[0].id
    reviewed = service.download(ctx, qw.checker_a, rid, fid).data
    as_person(client, qw.author)
    assert f"/releases/{fid}/download" not in _page(client, f"/requests/{rid}")  # not yet out
    release.release_approved(ctx)
    page = _page(client, f"/requests/{rid}")
    assert f"/releases/{fid}/download" in page
    got = client.get(f"/releases/{fid}/download")
    assert got.status_code == 200 and got.data == reviewed
    assert got.headers["Content-Disposition"].startswith("attachment")
    assert client.get(f"/requests/{rid}/files/{fid}/download").status_code == 403
    service.revoke_release(ctx, qw.checker_a, rid, reason="breach")
    assert client.get(f"/releases/{fid}/download").status_code in (403, 409)
