"""The custodian sign-off pages (SATRE 3.1.06) with real logins: the request page shows where
each dataset's sign-off stands to everyone who sees it, the sign-off form appears for the
custodian (and delegates) only, works with its CSRF token, and refuses anyone else."""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient

from enclave.control.context import Context
from enclave.control.service import egress
from output_checker.queue.service import signoffs
from output_checker.queue.workflow import SignoffState, Status
from tests.enclave.control.web.conftest import Web
from tests.output_checker.queue.factories import DATASET, QueueWorld, make_request
from tests.output_checker.queue.web.conftest import AsPerson

FORM = 'class="signoff-form"'
PENDING = f"custodian sign-off required for {DATASET}:\n      pending"


def _reviewed(ctx: Context, qw: QueueWorld) -> str:
    egress.set_egress_policy(ctx, qw.custodian, DATASET, True)
    egress.grant_egress_right(ctx, qw.custodian, DATASET, qw.project, qw.author)
    return make_request(ctx, qw, Status.REVIEWED)


def _flashes(web: Web) -> list[tuple[str, str]]:
    with web.client.session_transaction() as session:
        found: list[tuple[str, str]] = session.pop("_flashes", [])
        return found


def test_the_form_is_the_custodians_only_and_works(
    ctx: Context, qw: QueueWorld, web: Web, client: FlaskClient, as_person: AsPerson
) -> None:
    rid = _reviewed(ctx, qw)
    for viewer in (qw.checker_a, qw.author):
        as_person(client, viewer)
        shown = client.get(f"/requests/{rid}").get_data(as_text=True)
        assert PENDING in shown and FORM not in shown, viewer
    assert web.login(qw.custodian).status_code == 303
    assert f"/requests/{rid}/signoff" in web.page("/signoffs")
    page = web.page(f"/requests/{rid}/signoff")
    assert PENDING in page and FORM in page and "by-region.csv" in page
    assert 'name="back_to" value="signoff"' in page  # the form comes back here
    # a form without its token is refused and changes nothing
    assert client.post(f"/requests/{rid}/signoff", data={"dataset": DATASET}).status_code == 400
    done = web.post(f"/requests/{rid}/signoff", {"dataset": DATASET, "decision": "approve"})
    assert done.status_code == 303 and done.headers["Location"] == f"/requests/{rid}/signoff"
    assert _flashes(web) == [("ok", f"Sign-off for {DATASET} recorded: approve.")]
    page = web.page(f"/requests/{rid}/signoff")
    assert f"approved by {qw.custodian}" in page and FORM not in page
    assert f"/requests/{rid}/signoff" not in web.page("/signoffs")


def test_nobody_else_can_sign_off_through_the_form(ctx: Context, qw: QueueWorld, web: Web) -> None:
    rid = _reviewed(ctx, qw)
    for intruder in (qw.author, qw.checker_a):
        assert web.login(intruder).status_code == 303
        answer = web.post(f"/requests/{rid}/signoff", {"dataset": DATASET, "decision": "approve"})
        assert answer.status_code in (303, 403), intruder
    (shown,) = signoffs.egress_status(ctx, qw.checker_a, rid).datasets
    assert shown.state is SignoffState.PENDING and shown.approved_by == ()


def test_the_json_api_takes_the_custodians_sign_off_and_refuses_others(
    ctx: Context, qw: QueueWorld, client: FlaskClient, bearer: Callable[[str], dict[str, str]]
) -> None:
    rid = _reviewed(ctx, qw)
    url = f"/api/v1/requests/{rid}/signoff"
    cast = {"dataset": DATASET, "decision": "refuse", "reason": "the table names a small area"}
    for intruder in (qw.author, qw.checker_a):
        answer = client.post(url, json=cast, headers=bearer(intruder))
        assert answer.status_code == 403, intruder
    assert (
        client.post(url, json={"dataset": DATASET}, headers=bearer(qw.custodian)).status_code == 400
    )
    done = client.post(url, json=cast, headers=bearer(qw.custodian))
    assert done.status_code == 201, done.get_data(as_text=True)
    assert done.get_json()["decision"] == "refuse" and done.get_json()["signer"] == qw.custodian
    schema = client.get("/api/v1/openapi.json").get_json()
    assert "/api/v1/requests/{request_id}/signoff" in schema["paths"]
