"""Admin pages for datasets: list, register (with variables), view."""

from __future__ import annotations

from flask import Blueprint, render_template, url_for
from flask.typing import ResponseReturnValue

from enclave.control.rules import PURPOSES, Sensitivity
from enclave.control.service import datasets
from enclave.control.varspec import parse_variables
from enclave.control.web.forms import act, actor, field, listed
from enclave.control.web.state import context

bp = Blueprint("datasets", __name__, url_prefix="/datasets")

VARIABLES_HEADER = "name,sensitivity,description"


@bp.get("")
def index() -> ResponseReturnValue:
    """Registered datasets, with the form to register one."""
    return render_template(
        "admin/datasets.html",
        datasets=datasets.list_datasets(context(), actor()),
        purposes=PURPOSES,
        sensitivities=list(Sensitivity),
        variables_header=VARIABLES_HEADER,
    )


@bp.post("")
def register() -> ResponseReturnValue:
    """Register a dataset; variables are CSV lines ``name,sensitivity,description`` (the
    header line is optional)."""
    return act(
        lambda: datasets.register_dataset(
            context(),
            actor(),
            slug=field("slug"),
            name=field("name"),
            source_agency=field("source_agency"),
            description=field("description"),
            version=field("version"),
            custodian=field("custodian"),
            permitted_purposes=listed("purpose"),
            variables=parse_variables(_with_header(field("variables")), "csv"),
        ),
        back=url_for(".index"),
        done=lambda dataset: (
            f"Registered dataset {dataset.slug} ({len(dataset.variables)} variables)."
        ),
        to=lambda dataset: url_for(".show", slug=dataset.slug),
    )


def _with_header(text: str) -> str:
    first = text.splitlines()[0].replace(" ", "") if text else ""
    return text if first.startswith("name,") else f"{VARIABLES_HEADER}\n{text}"


@bp.get("/<slug>")
def show(slug: str) -> ResponseReturnValue:
    """One dataset: custodian, permitted purposes and variables with their sensitivity."""
    return render_template(
        "admin/dataset.html", dataset=datasets.get_dataset(context(), actor(), slug)
    )
