"""The queue's pages: the overview, a request, a file (rendered for review), a file's content
in the page (sandboxed), a diff between versions, the activity log, and the download of
released files (the outside face of the airlock).

Every view reads through the service layer as the logged-in person, which applies blinding
and the checker-only evidence; the templates render what they are given and nothing more.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from flask import (
    Blueprint,
    Response,
    abort,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue

from enclave.control.errors import ControlError
from enclave.control.service import projects
from enclave.control.web.forms import actor
from enclave.control.web.state import context
from output_checker.queue import service
from output_checker.queue.service import signoffs
from output_checker.queue.views import FileContent, RequestSummary
from output_checker.queue.web import pages, paging
from output_checker.queue.web.diff import table_diff, text_diff
from output_checker.queue.web.state import options
from output_checker.queue.workflow import Status

bp = Blueprint("requests", __name__)
# Stands for a request id in a URL routed once for many requests (see ``_detail_links``).
PLACEHOLDER = UUID(int=0)

# Served content may be framed by the queue's own pages only, and can do nothing: no
# scripts, no requests anywhere, a unique origin (``sandbox``) even if opened on its own.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox"
)


@bp.get("/")
def home() -> ResponseReturnValue:
    """The start page is the queue."""
    return redirect(url_for(".overview"))


@bp.get("/requests")
def overview() -> ResponseReturnValue:
    """The queue: requests the person may see (oldest status change first), a page at a
    time (``?page=``, ``?limit=``), with ages and the service target, filters by project and
    status, and the checkers' open reviews."""
    project = request.args.get("project", "").strip() or None
    status = request.args.get("status", "").strip() or None
    page = paging.page_from(request.args)
    # Ages are shown to the minute, so the page is the same all minute long at the same
    # state version: kept per session (its CSRF token) unless a message waits to be shown.
    now = context().now().replace(second=0, microsecond=0)
    if "_flashes" in session:
        return _overview(project, status, page, now)
    key = ("overview", g.user.uuid, session.get("sid"), request.full_path, now)
    return context().cached(key, lambda: _overview(project, status, page, now))


def _overview(project: str | None, status: str | None, page: paging.Page, now: datetime) -> str:
    found, more = paging.fetch(
        lambda limit, offset: service.list_requests(
            context(), actor(), project=project, status=status, limit=limit, offset=offset
        ),
        page,
    )
    target = options().service_target
    rows = [(summary, pages.ages(summary, now, target)) for summary in found]
    load = service.reviewer_load(context(), actor()) if "output_checker" in g.user.roles else None
    own_projects = []
    if "researcher" in g.user.roles:
        try:
            own_projects = [p.slug for p in projects.list_projects(context(), actor())]
        except ControlError:  # no projects to offer: the form is not drawn
            own_projects = []
    return render_template(
        "requests/index.html",
        rows=rows,
        links=_detail_links(found),
        page=page,
        first_row=page.offset + 1,
        pages=_page_links(page, more, project, status),
        load=load,
        project=project or "",
        status=status or "",
        statuses=[s.value for s in Status],
        own_projects=own_projects,
        target=target,
        age=pages.age_text,
    )


def _detail_links(found: list[RequestSummary]) -> dict[str, str]:
    """Each listed request's page URL: routed once and filled in, as ``url_for`` for every
    row took a tenth of the page's time."""
    pattern = url_for(".detail", request_id=PLACEHOLDER)
    return {s.id: pattern.replace(str(PLACEHOLDER), s.id) for s in found}


def _page_links(
    page: paging.Page, more: bool, project: str | None, status: str | None
) -> dict[str, str]:
    """URLs of the previous and next pages of the overview, filters kept."""
    kept: dict[str, Any] = {k: v for k, v in (("project", project), ("status", status)) if v}
    if page.limit != paging.DEFAULT_LIMIT:
        kept["limit"] = page.limit
    links = {}
    if page.number > 1:
        links["previous"] = url_for(".overview", page=page.number - 1, **kept)
    if more:
        links["next"] = url_for(".overview", page=page.number + 1, **kept)
    return links


@bp.get("/requests/<uuid:request_id>")
def detail(request_id: UUID) -> ResponseReturnValue:
    """One request: files by group, decisions, votes and comments as the viewer may see
    them, and the buttons for the actions the service says will work now."""
    found = pages.request_page(context(), actor(), str(request_id))
    now = context().now()
    return render_template(
        "requests/request.html",
        r=found,
        s=found.summary,
        # custodian sign-offs (SATRE 3.1.06): where they stand, and the form for a signer
        egress=signoffs.egress_status(context(), actor(), str(request_id)),
        ages=pages.ages(found.summary, now, options().service_target),
        age=pages.age_text,
        my_votes={v.file_id: v.vote for v in found.votes if v.reviewer == actor()},
    )


@bp.get("/requests/<uuid:request_id>/files/<uuid:file_id>")
def file_page(request_id: UUID, file_id: UUID) -> ResponseReturnValue:
    """A file rendered for review: a table with the checker's flagged cells highlighted
    (checkers), an image, a sandboxed frame for HTML and SVG, text or markdown."""
    found = service.get_request(context(), actor(), str(request_id))
    file = pages.file_of(found, str(file_id))
    content = service.view_file(context(), actor(), str(request_id), str(file_id))
    return render_template(
        "requests/file.html",
        r=found,
        s=found.summary,
        f=file,
        view=pages.shown(file, content.data),
        votes=[v for v in found.votes if v.file_id == file.id],
        comments=[c for c in found.comments if c.group == file.group],
        my_vote=next(
            (v.vote for v in found.votes if v.file_id == file.id and v.reviewer == actor()),
            "undecided",
        ),
    )


def inline(content: FileContent) -> Response:
    """A viewable file's bytes for display inside a queue page, locked down (no scripts,
    sandboxed, frameable only by the queue); 404 for types that are not viewable."""
    media = pages.CONTENT_TYPES.get(content.filetype)
    if media is None:
        abort(404, description=f"{content.name} cannot be shown in the browser")
    response = Response(content.data, content_type=media)
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["Content-Disposition"] = "inline"
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    return response


@bp.get("/requests/<uuid:request_id>/files/<uuid:file_id>/content")
def content(request_id: UUID, file_id: UUID) -> ResponseReturnValue:
    """A file's bytes for an ``<img>`` or sandboxed ``<iframe>``: the current snapshot, or
    ``?version=<sha256>`` of an earlier one (audited as a file view)."""
    version = request.args.get("version") or None
    return inline(pages.file_bytes(context(), actor(), str(request_id), str(file_id), version))


@bp.get("/requests/<uuid:request_id>/files/<uuid:file_id>/diff")
def diff(request_id: UUID, file_id: UUID) -> ResponseReturnValue:
    """What changed between two versions of a file (``?from=&to=`` sha256s; by default the
    one before the current and the current): cells of a table, lines of text, images side
    by side."""
    found = service.get_request(context(), actor(), str(request_id))
    file = pages.file_of(found, str(file_id))
    hashes = [v.sha256 for v in file.versions]  # oldest first
    after = request.args.get("to") or file.sha256
    earlier = [h for h in hashes[: hashes.index(after)] if h != after] if after in hashes else []
    before = request.args.get("from") or (earlier[-1] if earlier else after)
    old = pages.file_bytes(context(), actor(), str(request_id), str(file_id), before)
    new = pages.file_bytes(context(), actor(), str(request_id), str(file_id), after)
    display = pages.DISPLAY.get(file.filetype, "none")
    table = lines = None
    if display == "table":
        index_width, header_rows = pages.table_layout(file)
        table = table_diff(old.data, new.data, index_width=index_width, header_rows=header_rows)
    elif display != "image":
        lines = text_diff(old.data, new.data, before=before[:12], after=after[:12])
    return render_template(
        "requests/diff.html",
        r=found,
        s=found.summary,
        f=file,
        before=before,
        after=after,
        display=display,
        table=table,
        lines=lines,
    )


@bp.get("/requests/<uuid:request_id>/activity")
def activity(request_id: UUID) -> ResponseReturnValue:
    """The request's audit events the viewer may see (reads too, for checkers who ask)."""
    reads = request.args.get("reads") == "1"
    events = service.activity(context(), actor(), str(request_id), include_reads=reads)
    return render_template(
        "requests/activity.html", request_id=str(request_id), events=events, reads=reads
    )


def attachment(content: FileContent) -> Response:
    """A file as a download, named safely (the name is one the queue already accepted)."""
    response = Response(content.data, content_type="application/octet-stream")
    response.headers.set("Content-Disposition", "attachment", filename=content.name)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/releases/<uuid:file_id>/download")
def download_release(file_id: UUID) -> ResponseReturnValue:
    """A released file from the released area (audited; refused once revoked)."""
    return attachment(service.download_release(context(), actor(), str(file_id)))
