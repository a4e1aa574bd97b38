"""The differencing ledger in the queue (issue 11): every output is audited against everything
its project has already released, and every approved output joins the ledger.

* At intake (``_files.verdict``, run by the watcher or the upload path before the write
  transaction), an output the server re-made from its recipe becomes ledger cells; they are
  audited with the cells of every ``LedgerEntry`` of the project and stored by hash. A finding
  makes the output ``fail`` and is shown on the file's page. An output without a recipe is
  marked "not checked against earlier releases".
* At submission (``submission``), the request's outputs are audited again, against the
  ledger and against each other, since they would be released together.
* At approval (``releases.approve``), each output becomes a ``LedgerEntry`` in the same
  transaction. An output audited before a later approval is audited again first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from enclave.control.context import Context
from enclave.control.db import transaction
from enclave.control.models import Project
from output_checker.parameters import Parameters
from output_checker.queue import ledger_store
from output_checker.queue import models as m
from output_checker.queue.ledger_cells import (
    LedgerAudit,
    OutputCells,
    audit,
    not_checked,
    output_cells,
    report,
)
from output_checker.queue.recheck import Derived, Verdict
from output_checker.queue.recipes import (
    Recipe,
    derive_from,
    parse_recipe,
    project_data_dir,
    recipe_frame,
)
from output_checker.queue.workflow import CheckStatus

NO_RECIPE = "the output has no recipe, so the server cannot know who contributes to its cells"
NOT_REMADE = "the server could not re-make the output from its recipe"


@dataclass(frozen=True)
class Ledgered:
    """An output's audit against the ledger: the report the file stores, the stored cells'
    hash (None without cells) and the last ledger entry it was audited against."""

    report: dict[str, Any]
    sha256: str | None
    through: int


def _entries(session: Session, project: str) -> list[tuple[m.LedgerEntry, m.File, m.Request]]:
    rows = session.execute(
        select(m.LedgerEntry, m.File, m.Request)
        .join(Project, Project.id == m.LedgerEntry.project_id)
        .join(m.File, m.File.id == m.LedgerEntry.file_id)
        .join(m.Request, m.Request.id == m.File.request_id)
        .where(Project.slug == project)
        .order_by(m.LedgerEntry.id)
    )
    return [(entry, file, request) for entry, file, request in rows]


def last_entry(session: Session, project_id: int) -> int:
    """The id of the project's newest ledger entry (0 when it has none)."""
    newest = session.scalar(
        select(func.max(m.LedgerEntry.id)).where(m.LedgerEntry.project_id == project_id)
    )
    return int(newest or 0)


@dataclass(frozen=True)
class _Loaded:
    """A project's ledger as read for one audit."""

    described: dict[str, dict[str, Any]]  # each released output by label (its file's uuid)
    released: list[OutputCells]
    recipes: dict[str, str]  # the released outputs' recipes (JSON), by label
    unchecked: int  # released outputs without cells (no recipe)
    through: int  # the newest entry read


def _load(ctx: Context, project: str) -> _Loaded:
    with transaction(ctx.engine, readonly=True) as session:
        entries = _entries(session, project)
    described = {
        file.uuid: {
            "label": f"{file.name} in “{request.title or 'untitled'}”",
            "request": request.uuid,
            "file": file.uuid,
            "approved": entry.created_at.date().isoformat(),
        }
        for entry, file, request in entries
    }
    stored = [(file.uuid, entry.sha256) for entry, file, _ in entries if entry.sha256]
    return _Loaded(
        described=described,
        released=[ledger_store.load(ctx.data_dir, digest, label) for label, digest in stored],
        recipes={file.uuid: file.recipe for _, file, _ in entries if file.recipe},
        unchecked=len(entries) - len(stored),
        through=max((entry.id for entry, _, _ in entries), default=0),
    )


def audit_output(ctx: Context, project: str, verdict: Verdict, parameters: Parameters) -> Ledgered:
    """Audit a re-made output against the project's ledger and store its cells."""
    return audit_outputs(ctx, project, {"": verdict}, {"": ""}, parameters)[""]


def audit_outputs(
    ctx: Context,
    project: str,
    verdicts: Mapping[str, Verdict],
    names: Mapping[str, str],
    parameters: Parameters,
) -> dict[str, Ledgered]:
    """Audit the outputs of one request (by file uuid, named by ``names``) against the
    project's ledger and against each other, since they would be released together, and
    store their cells."""
    loaded = _load(ctx, project)
    cells: dict[str, OutputCells | str] = {}
    for key, verdict in verdicts.items():
        if verdict.derived is None:
            cells[key] = NOT_REMADE if verdict.recheck.value == "does_not_match" else NO_RECIPE
        else:
            made = output_cells(verdict.derived)
            cells[key] = made.labelled(key) if isinstance(made, OutputCells) else made
    siblings = {key: made for key, made in cells.items() if isinstance(made, OutputCells)}
    described = loaded.described | {
        key: {"label": f"{names[key]} in this request", "file": key} for key in siblings if key
    }
    audited = {}
    for key, verdict in verdicts.items():
        made = cells[key]
        if isinstance(made, str):
            audited[key] = Ledgered(not_checked(made), None, loaded.through)
            continue
        others = [*loaded.released, *(other for name, other in siblings.items() if name != key)]
        result = audit(others, made, parameters.threshold)
        shown = report(
            result, parameters.threshold, described, len(loaded.described), loaded.unchecked
        )
        assert verdict.derived is not None
        shown["mitigations"] += [
            _earlier_population(ctx, project, verdict.derived, made, others, label, recipe)
            for label, recipe in _earlier_recipes(result, loaded, verdict.derived.recipe)
        ]
        digest = ledger_store.save(ctx.data_dir, made)
        audited[key] = Ledgered({**shown, "through": loaded.through}, digest, loaded.through)
    return audited


def _earlier_recipes(
    result: LedgerAudit, loaded: _Loaded, recipe: Recipe
) -> list[tuple[str, Recipe]]:
    """The released outputs a finding names whose recipe reads the same dataset through other
    filters: the new table can be re-made over their population."""
    offers = []
    for label in sorted({f.other.output for f in result.differencing} & set(loaded.recipes)):
        earlier = parse_recipe(json.loads(loaded.recipes[label]))
        if earlier.dataset == recipe.dataset and earlier.filters != recipe.filters:
            offers.append((label, earlier))
    return offers


def _earlier_population(
    ctx: Context,
    project: str,
    derived: Derived,
    cells: OutputCells,
    released: list[OutputCells],
    label: str,
    earlier: Recipe,
) -> dict[str, Any]:
    """The mitigation "use the earlier output's population": the new table re-made with the
    earlier output's filters, checked by its own rules and audited again."""
    recipe = replace(derived.recipe, filters=earlier.filters)
    frame = recipe_frame(recipe, project_data_dir(ctx.data_dir, project))
    result = derive_from(recipe, frame, derived.result.parameters)
    remade = output_cells(Derived(recipe, frame, result))
    unresolved = []
    if isinstance(remade, str):
        unresolved.append(remade)
    elif not audit(released, remade, derived.result.parameters.threshold).clean:
        unresolved.append("the re-made table still differences with a release")
    if result.status.label == "fail":
        unresolved.append("the re-made table fails its own checks")
    gained = 0 if isinstance(remade, str) else int((~np.isin(remade.keys, cells.keys)).sum())
    lost = 0 if isinstance(remade, str) else int((~np.isin(cells.keys, remade.keys)).sum())
    return {
        "kind": "earlier_population",
        "description": f"use the population of the earlier output (its filters: "
        f"{', '.join(f'{f.column} {f.op} {f.value}' for f in earlier.filters) or 'none'})",
        "cost": {"text": f"{gained} entities added and {lost} removed"},
        "resolves": not unresolved,
        "unresolved": unresolved,
        "output": label,
    }


def combine(verdict: Verdict, ledgered: Ledgered) -> Verdict:
    """The verdict with the ledger's audit folded in: any finding makes the output fail."""
    shown = ledgered.report
    if not shown["checked"]:
        summary = f"{verdict.summary}; {shown['reason']}"
        return _with(verdict, ledgered, summary)
    findings = len(shown["differencing"]) + len(shown["lp"])
    if not findings:
        released = shown["released_outputs"]
        summary = f"{verdict.summary}; no differencing against {released} earlier output(s)"
        return _with(verdict, ledgered, summary)
    earlier = ", ".join(shown["earlier_outputs"]) or "its own cells"
    checks = verdict.summary.removeprefix(f"{verdict.status.value}: ")
    summary = (
        f"fail: differencing with {earlier}: {findings} finding(s) isolate fewer than "
        f"{shown['threshold']} entities; {checks}"
    )
    return _with(replace(verdict, status=CheckStatus.FAIL), ledgered, summary)


def _with(verdict: Verdict, ledgered: Ledgered, summary: str) -> Verdict:
    return replace(
        verdict, summary=summary, ledger_report=ledgered.report, ledger_sha256=ledgered.sha256
    )


def stored_report(row: m.File) -> dict[str, Any] | None:
    """The ledger report a file row holds."""
    return json.loads(row.ledger_report) if row.ledger_report else None


def stale(rows: Iterable[m.File], newest: int) -> list[m.File]:
    """The outputs whose audit predates the ledger's newest entry."""
    return [
        row
        for row in rows
        if (report_ := stored_report(row)) is not None
        and report_.get("checked")
        and int(report_.get("through", 0)) < newest
    ]


def enter(session: Session, ctx: Context, release: m.Release, rows: Iterable[m.File]) -> None:
    """Add the approved outputs to the project's ledger (once each; the ledger only grows)."""
    request = session.get(m.Request, release.request_id)
    assert request is not None
    present = set(
        session.scalars(select(m.LedgerEntry.file_id).where(m.LedgerEntry.release_id == release.id))
    )
    for row in rows:
        if row.id not in present:
            session.add(
                m.LedgerEntry(
                    project_id=request.project_id,
                    release_id=release.id,
                    file_id=row.id,
                    sha256=row.ledger_sha256,
                    created_at=ctx.now(),
                )
            )
