"""submit(): the outbox inside a sandbox; the queue's JSON API when a URL and token are
configured, tested against the real review queue served over loopback HTTP in a thread.

The API path must make the same request the outbox watcher makes of the same bundle (files,
hashes, kinds, records, recipes, exceptions and the server's re-check verdicts), leave no
half-built request behind when a step fails, and keep the token to itself."""

from __future__ import annotations

import copy
import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from enclave.analysis import AnalysisError, Session, bundle
from enclave.analysis.bundle import BundleContent
from enclave.analysis.submit import create_request, multipart
from enclave.control.context import Context
from enclave.control.db import make_engine, transaction
from enclave.control.db import upgrade as upgrade_control
from enclave.control.service import tokens
from enclave.settings import Settings
from output_checker.queue import models as m
from output_checker.queue import service, watcher
from output_checker.queue.db import upgrade as upgrade_queue
from output_checker.queue.filetypes import DEFAULT_LIMITS, Limits
from output_checker.queue.storage import BlobStore
from output_checker.queue.views import FileView
from output_checker.queue.web import create_app
from output_checker.queue.web.state import QueueOptions
from tests.enclave.analysis.charity import charity_panel
from tests.enclave.control.dbfixtures import BACKENDS, temporary_database
from tests.enclave.control.web.conftest import SECRET_KEY
from tests.output_checker.queue.factories import QueueWorld, approve_all, make_queue_world


@dataclass(frozen=True)
class Queue:
    """The review queue's world (project ``study``), its database and a researcher token."""

    ctx: Context
    qw: QueueWorld
    settings: Settings
    token: str

    @property
    def project_dir(self) -> Path:
        return self.ctx.data_dir / "projects" / self.qw.project

    def requests(self, status: str | None = None) -> list[m.Request]:
        with transaction(self.ctx.engine, readonly=True) as session:
            query = select(m.Request)
            if status is not None:
                query = query.where(m.Request.status == status)
            found = list(session.scalars(query))
            session.expunge_all()
            return found


@contextmanager
def serving(queue: Queue, limits: Limits = DEFAULT_LIMITS) -> Iterator[str]:
    """The queue's real app on a loopback port in a thread; yields its base URL."""
    app = create_app(queue.settings, context=queue.ctx, options=QueueOptions(limits=limits))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with temporary_database(getattr(request, "param", "sqlite"), tmp_path) as url:
        yield url


@pytest.fixture
def queue(database_url: str, tmp_path: Path) -> Iterator[Queue]:
    engine = make_engine(database_url)
    upgrade_control(engine)
    upgrade_queue(engine)
    ctx = Context(engine=engine, data_dir=tmp_path / "data")
    qw = make_queue_world(ctx)
    charity_panel().to_csv(ctx.data_dir / "projects" / qw.project / "data" / "charities.csv",
                           index=False)  # fmt: skip
    token = tokens.issue_token(ctx, qw.admin, qw.author, label="analysis").token
    settings = Settings(data_dir=ctx.data_dir, database_url=database_url, secret_key=SECRET_KEY)
    try:
        yield Queue(ctx, qw, settings, token)
    finally:
        ctx.close()


@pytest.fixture
def url(queue: Queue) -> Iterator[str]:
    with serving(queue) as base:
        yield base


def _session(queue: Queue, url: str | None, token: str | None = None) -> Session:
    return Session(queue.qw.project, queue.project_dir / "outbox" / "researcher",
                   queue.project_dir / "data", suppress=False, quiet=True, queue_url=url,
                   queue_token=token if token is not None else queue.token)  # fmt: skip


def _make_outputs(session: Session, tmp_path: Path) -> None:
    """A crosstab with failing cells and an exception, a passing one, a regression and a
    custom file, each described; results.json and session.json come as supporting files."""
    df = session.load("charities")
    session.crosstab(df.year, df.grant_type)  # cells under the threshold: fail
    session.crosstab(df.survivor, df.grant_type)
    session.olsr("inc_activity ~ inc_grants + total_costs", data=df)
    notes = tmp_path / "methods.md"
    notes.write_text("# Methods\nA panel of charities, 2014 to 2019.\n")
    session.custom_output(notes, "methods note")
    for name, text in (("output_0", "Charities by year and grant type."),
                       ("output_1", "Survivors by grant type."),
                       ("output_2", "Activity income on grants and costs.")):  # fmt: skip
        session.add_comments(name, text)
    session.add_exception("output_0", "The small cells are published in the annual report — p. 12.")


def _stored(queue: Queue, request_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Everything the queue recorded about a request's groups and files, by name."""
    with transaction(queue.ctx.engine, readonly=True) as session:
        request = session.scalar(select(m.Request).where(m.Request.uuid == request_id))
        assert request is not None
        groups = session.scalars(select(m.Group).where(m.Group.request_id == request.id)).all()
        group_of = {g.id: g.name for g in groups}
        files = session.scalars(select(m.File).where(m.File.request_id == request.id)).all()
        columns = ("name", "kind", "filetype", "sha256", "size", "record", "recipe", "exception",
                   "automated_status", "recheck", "check_summary", "added_turn",
                   "content_turn", "withdrawn_turn")  # fmt: skip
        return (
            {g.name: (g.context, g.controls) for g in groups},
            {
                f.name: {"group": group_of[f.group_id]} | {c: getattr(f, c) for c in columns}
                for f in files
            },
        )


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
def test_the_api_makes_the_request_the_outbox_makes(queue: Queue, url: str, tmp_path: Path) -> None:
    session = _session(queue, url)
    _make_outputs(session, tmp_path)
    content = bundle.build(list(session.outputs), title="Charity outputs", project="study")

    bundle.write(session.outbox, content)
    (outcome,) = watcher.scan(queue.ctx)
    assert outcome.accepted and outcome.request_id is not None
    created = create_request(url, queue.token, "study", content)

    assert created.status == "pending" and created.request_id != outcome.request_id
    via_outbox, via_api = (service.get_request(queue.ctx, queue.qw.author, rid).summary
                           for rid in (outcome.request_id, created.request_id))  # fmt: skip
    for made in (via_outbox, via_api):
        assert (made.status.value, made.author, made.project) == ("pending", queue.qw.author,
                                                                   "study")  # fmt: skip
        assert made.title == "Charity outputs"
    assert (via_outbox.source, via_api.source) == ("bundle", "upload")

    outbox_groups, outbox_files = _stored(queue, outcome.request_id)
    api_groups, api_files = _stored(queue, created.request_id)
    assert api_files == outbox_files  # names, groups, kinds, bytes, records, verdicts
    assert [f["name"] for f in content.manifest["files"]] == list(api_files)
    files = dict(content.files)
    for name, stored in api_files.items():
        assert BlobStore.for_data_dir(queue.ctx.data_dir).read(stored["sha256"]) == files[name]
    assert {n: (f["kind"], f["automated_status"], f["recheck"]) for n, f in api_files.items()} == {
        "output_0.csv": ("output", "fail", "matches"),
        "output_1.csv": ("output", "pass", "matches"),
        "output_2.csv": ("output", "pass", "not_machine_checkable"),  # a model: not re-fitted
        "output_3.md": ("output", "review", "not_machine_checkable"),
        "results.json": ("supporting", None, None),
        "session.json": ("supporting", None, None),
    }
    assert api_files["output_0.csv"]["exception"].startswith("The small cells")
    assert api_files["output_0.csv"]["record"] and api_files["output_0.csv"]["recipe"]
    assert created.verdicts["output_0.csv"] == "fail"
    assert api_groups == outbox_groups
    assert api_groups["session"][0] and api_groups["session"][1]


def test_session_submit_leaves_the_request_pending(queue: Queue, url: str, tmp_path: Path) -> None:
    session = _session(queue, url)
    _make_outputs(session, tmp_path)
    submission = session.submit(title="For the report")
    assert submission.via == "api" and submission.status == "pending"
    assert submission.request_id is not None
    detail = service.get_request(queue.ctx, queue.qw.author, submission.request_id)
    assert detail.summary.status.value == "pending" and detail.summary.title == "For the report"
    assert len(detail.files) == 6 and detail.summary.outputs == 4
    assert len(session.outputs) == 0
    assert not session.outbox.exists()  # one request, not a second one by the watcher


def _undescribed(content: BundleContent, group: str) -> BundleContent:
    """``content`` with one group's context left blank, which the queue refuses to submit."""
    manifest = copy.deepcopy(content.manifest)
    manifest["groups"][group]["context"] = ""
    return BundleContent(content.files, manifest)


def test_submit_now_submits_a_complete_request(queue: Queue, url: str, tmp_path: Path) -> None:
    session = _session(queue, url)
    _make_outputs(session, tmp_path)
    content = bundle.build(list(session.outputs), title="", project="study")
    created = create_request(url, queue.token, "study", content, submit_now=True)
    assert created.status == "submitted"
    (row,) = queue.requests()
    assert row.uuid == created.request_id and row.status == "submitted"
    assert row.title  # untitled: named like an untitled bundle
    assert row.first_submitted_at is not None


def test_a_refused_submission_is_withdrawn(queue: Queue, url: str, tmp_path: Path) -> None:
    session = _session(queue, url)
    _make_outputs(session, tmp_path)
    content = _undescribed(
        bundle.build(list(session.outputs), title="t", project="study"), "session"
    )
    with pytest.raises(AnalysisError) as caught:
        create_request(url, queue.token, "study", content, submit_now=True)
    message = str(caught.value)
    assert "refused the submission (HTTP 409)" in message and "session" in message
    assert message.endswith("withdrawn") and "\n" not in message
    (row,) = queue.requests()
    assert row.status == "withdrawn"


def test_a_file_refused_half_way_leaves_no_pending_request(queue: Queue, tmp_path: Path) -> None:
    session = _session(queue, None)
    _make_outputs(session, tmp_path)
    content = bundle.build(list(session.outputs), title="big", project="study")
    sizes = dict((name, len(data)) for name, data in content.files)
    limit = sizes["session.json"] + 1  # every file fits but results.json, the fifth
    assert (
        sizes["results.json"] > limit
        and max(sizes[n] for n in sizes if n != "results.json") < limit
    )
    with serving(queue, Limits(max_file_bytes=limit)) as url:
        session.queue_url = url
        with pytest.raises(AnalysisError) as caught:
            session.submit(title="big")
    message = str(caught.value)
    assert "refused results.json (HTTP 400)" in message and "over the limit" in message
    assert "withdrawn" in message and queue.token not in message
    assert queue.requests(status="pending") == []
    (row,) = queue.requests()
    assert row.status == "withdrawn"
    _, files = _stored(queue, row.uuid)
    assert list(files) == ["output_0.csv", "output_1.csv", "output_2.csv", "output_3.md"]
    assert len(session.outputs) == 4  # nothing lost: fix and submit again


@pytest.mark.parametrize(
    ("token", "expected"),
    [("wrong-" + "x" * 40, "HTTP 401"), (None, "HTTP 403")],
)
def test_a_bad_token_is_refused_clearly(
    queue: Queue, url: str, tmp_path: Path, token: str | None, expected: str
) -> None:
    if token is None:  # a real token of someone who is not a member of the project
        token = tokens.issue_token(queue.ctx, queue.qw.admin, queue.qw.outsider, label="x").token
    session = _session(queue, url, token)
    _make_outputs(session, tmp_path)
    with pytest.raises(AnalysisError) as caught:
        session.submit()
    message = str(caught.value)
    assert f"the queue refused the new request ({expected})" in message
    assert token not in message and "\n" not in message
    assert queue.requests() == [] and len(session.outputs) == 4


@dataclass
class Thief:
    """A server answering the API with a redirect to its own ``/steal``, which records the
    Authorization header of whatever reaches it (urllib would follow a 301, 302 or 303 with
    a GET carrying the same headers, the token included)."""

    url: str
    code: int = 302
    stolen: list[str] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)


@pytest.fixture
def thief() -> Iterator[Thief]:
    found = Thief("")

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            found.seen.append(self.path)
            if self.path == "/steal":
                found.stolen.append(self.headers.get("Authorization", ""))
                body = b'{"id": "00000000-0000-4000-8000-000000000000", "status": "pending"}'
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
            else:
                body = b""
                self.send_response(found.code)
                self.send_header("Location", "/steal")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    found.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_redirects_are_not_followed(queue: Queue, thief: Thief, tmp_path: Path, code: int) -> None:
    thief.code = code
    session = _session(queue, thief.url)
    _make_outputs(session, tmp_path)
    with pytest.raises(AnalysisError, match=rf"redirect \(HTTP {code}\), not followed"):
        session.submit()
    assert thief.stolen == []
    assert len(session.outputs) == 4


def test_plain_http_never_goes_through_a_proxy(
    queue: Queue, url: str, thief: Thief, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", thief.url)  # would see the token in clear
    session = _session(queue, url)
    _make_outputs(session, tmp_path)
    assert session.submit().status == "pending"
    assert thief.seen == []


def test_plain_http_to_another_machine_is_refused(queue: Queue, tmp_path: Path) -> None:
    for address in ("http://queue.example.org", "http://10.0.0.7:8000",
                    "https://user:pw@queue.example.org", "ftp://127.0.0.1"):  # fmt: skip
        session = _session(queue, address)
        _make_outputs(session, tmp_path)
        with pytest.raises(AnalysisError, match="ENCLAVE_QUEUE_URL must"):
            session.submit()
        assert len(session.outputs) == 4


def test_unreachable_queue(queue: Queue, tmp_path: Path) -> None:
    session = _session(queue, "http://127.0.0.1:9")
    _make_outputs(session, tmp_path)
    with pytest.raises(AnalysisError, match="cannot reach the queue"):
        session.submit()
    assert len(session.outputs) == 4


def test_without_a_queue_submit_writes_the_outbox(queue: Queue, tmp_path: Path) -> None:
    session = _session(queue, None)
    _make_outputs(session, tmp_path)
    with pytest.raises(AnalysisError, match="submit_now needs the queue's API"):
        session.submit(submit_now=True)
    submission = session.submit()
    assert submission.via == "outbox" and submission.bundle is not None
    assert (submission.bundle / "finalised").is_file()
    (outcome,) = watcher.scan(queue.ctx)
    assert outcome.accepted


def test_multipart_bodies_are_well_formed() -> None:
    data = b"--enclave-\r\n\x00\xff binary"
    body, content_type = multipart([("exception", "ünïcode\r\nlines")], "file", "a b.csv", data)
    boundary = content_type.split("boundary=", 1)[1]
    assert body.count(boundary.encode()) == 3 and body.endswith(f"--{boundary}--\r\n".encode())
    assert b'name="file"; filename="a b.csv"' in body and data in body
    assert "ünïcode\r\nlines".encode() in body
    for bad in ('a".csv', "a\r\n.csv", "a\\b.csv"):
        with pytest.raises(AnalysisError, match="cannot be uploaded"):
            multipart([], "file", bad, b"x")


def _release_survivors(queue: Queue) -> None:
    """Release survivors by grant type (every charity), approved by two checkers."""
    ctx, qw = queue.ctx, queue.qw
    first = _session(queue, None)
    charities = first.load("charities")
    first.crosstab(charities.survivor, charities.grant_type)
    first.add_comments("output_0", "Survivors by grant type.")
    first.submit()
    (released,) = watcher.scan(ctx)
    assert released.request_id is not None
    service.submit(ctx, qw.author, released.request_id)
    for checker in (qw.checker_a, qw.checker_b):
        approve_all(ctx, qw, released.request_id, checker)
    service.approve(ctx, qw.checker_c, released.request_id, comment="two approvals")


def _scanned_output(queue: Queue) -> FileView:
    """The one output file of the bundle the watcher takes from the outbox."""
    (outcome,) = watcher.scan(queue.ctx)
    assert outcome.request_id is not None
    request = service.get_request(queue.ctx, queue.qw.author, outcome.request_id)
    (file,) = [f for f in request.files if f.kind == "output"]
    return file


def test_the_ledger_checks_library_outputs_against_earlier_releases(
    queue: Queue, tmp_path: Path
) -> None:
    """Outputs made with the analysis library carry recipes, so the queue audits them against
    everything released: the same crosstab without one charity's six rows is caught."""
    _release_survivors(queue)
    second = _session(queue, None)
    charities = second.load("charities")
    fewer = second.where(charities, "charity_id", "!=", 0)
    second.crosstab(fewer.survivor, fewer.grant_type)
    second.submit()
    file = _scanned_output(queue)
    assert file.automated_status == "fail" and file.ledger is not None
    (finding,) = file.ledger["differencing"]
    gone = charities[charities.charity_id == 0]
    assert finding["isolated"] == len(gone) and finding["nested"]
    assert finding["cell"]["key"] == [gone.survivor.iloc[0], gone.grant_type.iloc[0]]


def test_rounding_in_the_session_resolves_the_differencing(queue: Queue) -> None:
    """The same re-release rounded to base 10 (at least max(T, 2 x protection)): the queue
    re-derives it rounded, finds it matches, and the ledger no longer isolates the charity."""
    _release_survivors(queue)
    second = _session(queue, None)
    charities = second.load("charities")
    fewer = second.where(charities, "charity_id", "!=", 0)
    table = second.crosstab(fewer.survivor, fewer.grant_type, round_to=10)
    assert (table.stack() % 10 == 0).all()
    second.submit()
    file = _scanned_output(queue)
    assert file.recheck == "matches", file.check_summary
    assert file.recipe is not None and file.recipe["round"] == 10
    assert file.ledger is not None and file.ledger["differencing"] == []
    assert file.automated_status != "fail", file.check_summary


def test_a_rounded_file_altered_in_the_outbox_does_not_match(queue: Queue) -> None:
    """An attacker edits the rounded CSV in the bundle (still multiples of ten) and re-binds
    the manifest and the record to the new bytes: the queue re-derives the table and refuses
    the numbers."""
    session = _session(queue, None)
    charities = session.load("charities")
    session.crosstab(charities.survivor, charities.grant_type, round_to=10)
    session.add_comments("output_0", "Survivors by grant type, rounded.")
    content = bundle.build(list(session.outputs), title="rounded", project="study")
    files = dict(content.files)
    lines = files["output_0.csv"].decode().splitlines()
    fields = lines[-1].split(",")
    fields[-1] = str(int(fields[-1]) + 10)
    altered = "\n".join([*lines[:-1], ",".join(fields)]).encode() + b"\n"
    digest = hashlib.sha256(altered).hexdigest()
    manifest = copy.deepcopy(content.manifest)
    (entry,) = [e for e in manifest["files"] if e["name"] == "output_0.csv"]
    entry["sha256"] = entry["record"]["output"]["sha256"] = digest
    files["output_0.csv"] = altered
    bundle.write(session.outbox, BundleContent(tuple(files.items()), manifest))
    file = _scanned_output(queue)
    assert file.sha256 == digest  # accepted as submitted, then judged against the data
    assert file.recheck == "does_not_match" and file.automated_status == "fail"
    assert "do not match the data" in file.check_summary
