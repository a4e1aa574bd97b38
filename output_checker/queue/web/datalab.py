"""The data lab client's pages: upload a service-user list, see its validation report, submit
it for evaluation, follow the evaluation, and reach the release request that carries the report.

Every rule is in ``enclave.datalab.service`` (only data lab clients of an active project get
past it; anyone else's upload or evaluation is a 404); these views parse the form, call it as
the logged-in person and render. Refusals reach the app's error handler: by role a 403 page,
bad input flashed on the upload form.
"""

from __future__ import annotations

from uuid import UUID

from flask import (
    Blueprint,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue

from enclave.control.errors import ControlError, InvalidInput, NotFound
from enclave.control.web.forms import actor, field
from enclave.control.web.state import context
from enclave.datalab import service
from output_checker.queue import service as queue

bp = Blueprint("datalab", __name__, url_prefix="/datalab")
REFRESH_SECONDS = 5


@bp.get("")
def index() -> ResponseReturnValue:
    """The client's evaluations, newest first, with their status and queue request."""
    evaluations = service.list_evaluations(context(), actor())
    return render_template("datalab/index.html", evaluations=evaluations)


@bp.get("/upload")
def upload_form() -> ResponseReturnValue:
    """The upload form: the client's projects, the file, the programme's name."""
    projects = service.client_projects(context(), actor())
    return render_template("datalab/upload.html", projects=projects, upload=None, form={})


@bp.post("/upload")
def upload() -> ResponseReturnValue:
    """Validate the uploaded list and show its report (with a Submit button if it is valid)."""
    g.back_url = url_for(".upload_form")
    part = request.files.get("file")
    if part is None or not part.filename:
        raise InvalidInput("choose the CSV file of your service users", rule="no_file")
    # one byte past the limit is enough for the service to refuse it; the rest is not read
    data = part.stream.read(service.MAX_UPLOAD_BYTES + 1)
    found = service.upload_cohort(
        context(), actor(), project=field("project"), filename=part.filename, data=data
    )
    projects = service.client_projects(context(), actor())
    form = {"programme": field("programme"), "description": field("description")}
    status = 200 if found.id else 422
    return render_template(
        "datalab/upload.html", projects=projects, upload=found, form=form
    ), status


@bp.post("/uploads/<uuid:upload_id>/submit")
def submit(upload_id: UUID) -> ResponseReturnValue:
    """Submit a valid upload for evaluation; the evaluation's page follows it."""
    g.back_url = url_for(".upload_form")
    try:
        found = service.submit_evaluation(
            context(), actor(), upload_id=str(upload_id), programme=field("programme"),
            description=field("description"),
        )  # fmt: skip
    except NotFound as error:  # someone else's upload, or none: a 404, not a flash
        return render_template("error.html", status=404, message=str(error)), 404
    flash(f"Submitted: the evaluation of {found.programme} has started.", "ok")
    return redirect(url_for(".evaluation", evaluation_id=found.id), code=303)


@bp.get("/evaluations/<uuid:evaluation_id>")
def evaluation(evaluation_id: UUID) -> ResponseReturnValue:
    """An evaluation's status (the page refreshes while it runs), the refusal with its
    counts, or the queue request's status once the report is in review."""
    found = service.get_evaluation(context(), actor(), str(evaluation_id))
    queue_status = None
    if found.request_id:
        try:
            queue_status = queue.get_request(context(), actor(), found.request_id).summary.status
        except ControlError:  # no longer a member: the evaluation's own status stands
            queue_status = None
    response = make_response(
        render_template(
            "datalab/evaluation.html", e=found, queue_status=queue_status, refresh=REFRESH_SECONDS
        )
    )
    if found.running:
        response.headers["Refresh"] = str(REFRESH_SECONDS)
    return response
