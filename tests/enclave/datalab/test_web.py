"""The data lab's pages in the review queue's app, end to end on the synthetic justice enclave:
a client uploads a bad list (problems by file and line), a good one, submits it, follows the
evaluation to the review queue, two output checkers approve, the release worker releases and
the client downloads the PDF. Nobody but the project's data lab clients gets a page, and a
client never sees another client's upload or evaluation."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from io import BytesIO

import pytest
from flask import Flask
from flask.testing import FlaskClient

from enclave.control.audit import records
from enclave.control.context import Context
from enclave.control.service import people
from enclave.datalab import service
from enclave.datalab.jobs import Store
from enclave.settings import Settings
from output_checker.queue import release
from output_checker.queue import service as queue
from output_checker.queue.web import create_app
from output_checker.queue.workflow import Status
from tests.enclave.datalab.conftest import DataLab
from tests.enclave.datalab.test_pipeline import ADMIN
from tests.enclave.datalab.test_service import HEADER, cohort_csv

SECRET_KEY = "datalab-test-secret-key-of-forty-characters"
WAIT_SECONDS = 240


@pytest.fixture(scope="module")
def ctx(lab: DataLab) -> Iterator[Context]:
    context = lab.enclave.context()
    yield context
    context.close()


@pytest.fixture(scope="module")
def app(lab: DataLab, ctx: Context) -> Flask:
    settings = Settings(
        data_dir=lab.enclave.data_dir,
        database_url=lab.enclave.database_url,
        secret_key=SECRET_KEY,
    )
    return create_app(settings, context=ctx, testing=True)


def client_as(app: Flask, ctx: Context, email: str) -> FlaskClient:
    """A test client logged in as ``email`` (the session a login would make)."""
    client = app.test_client()
    if email:
        person = people.get_person(ctx, ADMIN, email)
        with client.session_transaction() as session:
            session.update(uid=person.uuid, at=ctx.now().timestamp(), sid=f"test-{email}")
    return client


def token(client: FlaskClient) -> str:
    """The CSRF token of the session (from the logout form every page carries)."""
    page = client.get("/requests").get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return found.group(1)


def upload(
    client: FlaskClient, lab: DataLab, data: bytes, name: str = "clients.csv"
) -> tuple[int, str]:
    response = client.post(
        "/datalab/upload",
        data={
            "csrf_token": token(client),
            "project": lab.project,
            "programme": "Mentoring",
            "description": "Weekly mentoring for a year after release",
            "file": (BytesIO(data), name),
        },
        content_type="multipart/form-data",
    )
    return response.status_code, response.get_data(as_text=True)


def wait_for(client: FlaskClient, page: str) -> str:
    """The evaluation's page once it has stopped refreshing (it ran to its end)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        response = client.get(page)
        assert response.status_code == 200
        if "Refresh" not in response.headers:
            return response.get_data(as_text=True)
        time.sleep(0.5)
    raise AssertionError(f"the evaluation did not finish in {WAIT_SECONDS} s")


def test_upload_submit_review_release_download(lab: DataLab, ctx: Context, app: Flask) -> None:
    client = client_as(app, ctx, lab.client)
    assert client.get("/datalab/upload").status_code == 200

    bad = HEADER + "Ann,Smith,01/02/1980,F,2021-03-04\nQuentin,Ruddle,1980-13-45,X,2021\n"
    status, page = upload(client, lab, bad.encode(), "bad.csv")
    assert status == 422
    assert "bad.csv:3" in page and "nothing was kept" in page
    assert "Ruddle" not in page and "1980-13-45" not in page  # lines, never values
    assert "submit-evaluation" not in page

    status, page = upload(client, lab, cohort_csv(lab))
    assert status == 200
    people_accepted = int(re.search(r"(\d+) people accepted", page).group(1))  # type: ignore[union-attr]
    assert people_accepted > 60
    action = re.search(r'action="(/datalab/uploads/([0-9a-f-]+)/submit)"', page)
    assert action, "a valid upload offers the Submit button"
    upload_id = action.group(2)
    assert Store.for_data_dir(ctx.data_dir).cohort_path(upload_id).exists()

    response = client.post(
        action.group(1),
        data={"csrf_token": token(client), "programme": "Mentoring", "description": "Weekly"},
    )
    assert response.status_code == 303
    page_url = f"/datalab/evaluations/{upload_id}"
    assert response.headers["Location"].endswith(page_url)
    done = wait_for(client, page_url)
    evaluation = service.get_evaluation(ctx, lab.client, upload_id)
    assert evaluation.status == service.IN_REVIEW, evaluation.reason
    assert evaluation.request_id and f"/requests/{evaluation.request_id}" in done
    assert evaluation.programme in client.get("/datalab").get_data(as_text=True)

    # the client's identifiers are gone, and that is audited
    assert not Store.for_data_dir(ctx.data_dir).cohort_path(upload_id).exists()
    (gone,) = [r for r in records(ctx.engine, action=service.DESTROYED) if r.target == upload_id]
    assert gone.actor == lab.client and gone.detail["deleted"] is True

    # the queue holds the client's submitted request with the PDF as its output
    rid = evaluation.request_id
    detail = queue.get_request(ctx, lab.client, rid)
    assert detail.summary.author == lab.client
    assert detail.summary.status == Status.SUBMITTED
    outputs = [f for f in detail.files if f.kind == "output"]
    assert [(f.name, f.filetype) for f in outputs] == [("impact-evaluation.pdf", "pdf")]
    assert {f.name for f in detail.files} == {"impact-evaluation.pdf", "checker-evidence.json"}
    assert any("Mentoring" in g.context for g in detail.groups)

    # two output checkers approve, a third releases, the worker copies it out
    for checker in lab.checkers[:2]:
        for file in outputs:
            queue.vote(ctx, checker, rid, file.id, "approve", comment="aggregate only")
        queue.submit_review(ctx, checker, rid)
    queue.approve(ctx, lab.checkers[2], rid, comment="two approvals")
    assert release.release_request(ctx, rid).status == Status.RELEASED.value

    released = queue.get_request(ctx, lab.client, rid).release
    assert released is not None
    (item,) = released.items
    response = client.get(f"/releases/{item.file_id}/download")
    assert response.status_code == 200
    assert response.data.startswith(b"%PDF-")
    assert 'id="release"' in client.get(page_url).get_data(as_text=True)


def test_an_oversized_upload_is_refused(
    lab: DataLab, ctx: Context, app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a small cap: the test client spools bigger bodies to a file it never closes
    monkeypatch.setattr(service, "MAX_UPLOAD_BYTES", 100_000)
    client = client_as(app, ctx, lab.client)
    status, _ = upload(client, lab, b"x" * (service.MAX_UPLOAD_BYTES + 1))
    assert status == 303  # flashed on the upload form
    page = client.get("/datalab/upload").get_data(as_text=True)
    assert "over the limit" in page


@pytest.mark.parametrize("who", ["researcher", "checker", "stranger", "admin"])
def test_only_data_lab_clients_get_the_pages(
    lab: DataLab, ctx: Context, app: Flask, who: str
) -> None:
    email = {"checker": lab.checkers[0], "admin": ADMIN}.get(who) or getattr(lab, who)
    client = client_as(app, ctx, email)
    assert client.get("/datalab").status_code == 403
    assert client.get("/datalab/upload").status_code == 403
    status, _ = upload(client, lab, cohort_csv(lab, 70))
    assert status == 403


def test_the_pages_need_a_login(lab: DataLab, app: Flask) -> None:
    response = app.test_client().get("/datalab")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_a_client_cannot_reach_another_clients_work(lab: DataLab, ctx: Context, app: Flask) -> None:
    mine = service.upload_cohort(
        ctx, lab.client, project=lab.project, filename="c.csv", data=cohort_csv(lab, 40)
    )
    assert mine.id is not None
    other = client_as(app, ctx, lab.other_client)
    response = other.post(
        f"/datalab/uploads/{mine.id}/submit",
        data={"csrf_token": token(other), "programme": "Stolen", "description": ""},
    )
    assert response.status_code == 404
    service.submit_evaluation(
        ctx, lab.client, upload_id=mine.id, programme="Mine", description="", background=False
    )
    assert service.run_evaluation(ctx, mine.id).status == service.REFUSED
    assert other.get(f"/datalab/evaluations/{mine.id}").status_code == 404
    assert "Mine" not in other.get("/datalab").get_data(as_text=True)
    # the owner sees the refusal with its counts, and no report
    response = client_as(app, ctx, lab.client).get(f"/datalab/evaluations/{mine.id}")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "Refresh" not in response.headers
    assert 'id="refusal"' in page and "fewer than 60" in page and 'id="counts"' in page
    assert 'id="release"' not in page
