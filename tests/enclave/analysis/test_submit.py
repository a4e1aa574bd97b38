"""submit(): the outbox inside a sandbox; the queue's JSON API when a URL and token are
configured (tested against a small fake server that records each call)."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from enclave.analysis import AnalysisError, Session
from tests.enclave.analysis.conftest import PROJECT

TOKEN = "tok-" + "x" * 20


class FakeQueue:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.reply: tuple[int, dict[str, Any], dict[str, str]] = (201, {"id": "req-123"}, {})


@pytest.fixture
def queue() -> Iterator[tuple[FakeQueue, str]]:
    fake = FakeQueue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            fake.calls.append(
                {"path": self.path, "headers": dict(self.headers), "body": json.loads(body)}
            )
            status, answer, headers = fake.reply
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(answer).encode())

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _session(data_dir: Path, url: str | None, token: str | None = TOKEN) -> Session:
    return Session(PROJECT, data_dir / "outbox", data_dir / "projects" / PROJECT / "data",
                   queue_url=url, queue_token=token, quiet=True)  # fmt: skip


def test_submit_posts_the_bundle_to_the_queue(
    data_dir: Path, charities: pd.DataFrame, queue: tuple[FakeQueue, str]
) -> None:
    fake, url = queue
    session = _session(data_dir, url)
    session.crosstab(charities.year, charities.grant_type)
    submission = session.submit(title="by API")
    assert submission.via == "api" and submission.request_id == "req-123"
    (call,) = fake.calls
    assert call["path"] == "/api/v1/bundles"
    assert call["headers"]["Authorization"] == f"Bearer {TOKEN}"
    body = call["body"]
    assert body["project"] == PROJECT and body["manifest"]["title"] == "by API"
    files = {f["name"]: base64.b64decode(f["content_base64"]) for f in body["files"]}
    for entry in body["manifest"]["files"]:
        assert hashlib.sha256(files[entry["name"]]).hexdigest() == entry["sha256"]
    assert not (data_dir / "outbox").exists()  # one request, not a second one by the watcher
    assert len(session.outputs) == 0


def test_a_refusal_keeps_the_outputs_and_hides_the_token(
    data_dir: Path, charities: pd.DataFrame, queue: tuple[FakeQueue, str]
) -> None:
    fake, url = queue
    fake.reply = (403, {"error": "not a member of the project"}, {})
    session = _session(data_dir, url)
    session.crosstab(charities.year, charities.grant_type)
    with pytest.raises(AnalysisError, match=r"HTTP 403.*not a member") as caught:
        session.submit()
    assert TOKEN not in str(caught.value)
    assert len(session.outputs) == 1


def test_redirects_are_not_followed(
    data_dir: Path, charities: pd.DataFrame, queue: tuple[FakeQueue, str]
) -> None:
    fake, url = queue
    fake.reply = (307, {}, {"Location": "http://127.0.0.2:9/steal"})
    session = _session(data_dir, url)
    session.crosstab(charities.year, charities.grant_type)
    with pytest.raises(AnalysisError, match="HTTP 307"):
        session.submit()
    assert len(fake.calls) == 1


def test_plain_http_to_another_machine_is_refused(data_dir: Path, charities: pd.DataFrame) -> None:
    session = _session(data_dir, "http://queue.example.org")
    session.crosstab(charities.year, charities.grant_type)
    with pytest.raises(AnalysisError, match="must use https"):
        session.submit()


def test_unreachable_queue(data_dir: Path, charities: pd.DataFrame) -> None:
    session = _session(data_dir, "http://127.0.0.1:9")
    session.crosstab(charities.year, charities.grant_type)
    with pytest.raises(AnalysisError, match="cannot reach the queue"):
        session.submit()
    assert len(session.outputs) == 1


def test_without_a_queue_submit_writes_the_outbox(data_dir: Path, charities: pd.DataFrame) -> None:
    session = _session(data_dir, None, None)
    session.crosstab(charities.year, charities.grant_type)
    submission = session.submit()
    assert submission.via == "outbox" and submission.bundle is not None
    assert (submission.bundle / "finalised").is_file()
