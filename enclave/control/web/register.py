"""The public transparency register: which projects use which data, for what, on what basis.

No login: an HTML page, ``/register.json`` and ``/register.csv``, all from
``register.transparency_register`` (approved, active, suspended and closed projects only; no
people, no variables, no internal references).
"""

from __future__ import annotations

import csv
import io

from flask import Blueprint, Response, jsonify, redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from enclave.control.service import register
from enclave.control.web.security import public
from enclave.control.web.state import context

bp = Blueprint("register", __name__)

# A spreadsheet runs a cell that starts with one of these as a formula; the register is
# downloaded by the public, so such cells are prefixed with a quote (OWASP's advice).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@bp.get("/")
@public
def home() -> ResponseReturnValue:
    """The site's front page is the register."""
    return redirect(url_for(".page"))


@bp.get("/register")
@public
def page() -> ResponseReturnValue:
    """The register as a web page."""
    return render_template("register.html", entries=register.transparency_register(context()))


@bp.get("/register.json")
@public
def as_json() -> ResponseReturnValue:
    """The register as JSON: ``{"projects": [...]}``."""
    entries = register.transparency_register(context())
    return jsonify(projects=[entry.to_dict() for entry in entries])


@bp.get("/register.csv")
@public
def as_csv() -> ResponseReturnValue:
    """The register as CSV, one row per project, columns ``register.CSV_COLUMNS``."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=register.CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for entry in register.transparency_register(context()):
        writer.writerow({key: neutralise(value) for key, value in register.csv_row(entry).items()})
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="transparency-register.csv"'},
    )


def neutralise(cell: str) -> str:
    """``cell``, prefixed with ``'`` if a spreadsheet would read it as a formula."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell
