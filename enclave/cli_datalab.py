"""``enclave datalab evaluate``: one Justice-Data-Lab-style impact evaluation from an
organisation's cohort file to the estimates JSON (and, optionally, the report).

Argument parsing and wiring only. The justice records come from the enclave's data directory
(``--data-dir``, else the ``ENCLAVE_`` settings): they must have been ingested and linked
(``enclave link ingest``, ``enclave link run``). Bad input prints the problems by file and
line and exits with code 2; so does a refusal (fewer than 60 matched people), which prints
the counts. Outputs are written only when everything succeeded, each to a temporary name
then renamed, so a failed run leaves no file, and never a partial one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from contextlib import nullcontext
from datetime import date
from pathlib import Path
from typing import Any

from enclave.control.context import open_context
from enclave.datalab.errors import DataLabError
from enclave.settings import Settings

MAX_SHOWN = 50
REPORT_SUFFIXES = (".pdf", ".html")


def _say(message: str) -> None:
    print(f"enclave datalab: {message}", file=sys.stderr)


def _quiet(message: str) -> None:
    del message


def _fail(message: str) -> int:
    print(f"enclave: error: {message}", file=sys.stderr)
    return 2


def write_atomic(files: Sequence[tuple[Path, bytes]]) -> None:
    """Write each file to a temporary name beside it, then rename them all into place; if
    any write fails, every temporary file is removed and no file is renamed."""
    written: list[tuple[str, Path]] = []
    try:
        for path, data in files:
            handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            written.append((temporary, path))
            with os.fdopen(handle, "wb") as out:
                out.write(data)
    except BaseException:
        for temporary, _ in written:
            Path(temporary).unlink(missing_ok=True)
        raise
    for temporary, path in written:
        os.replace(temporary, path)


def _one_blas_thread() -> Any:
    """One BLAS thread: on a small shared machine the propensity fit's Gram products are
    ten times slower with several competing threads."""
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _check_options(args: argparse.Namespace) -> str | None:
    """A one-line problem with the options, or None."""
    for path in (args.json, args.report):
        if path is not None and not path.parent.is_dir():
            return f"{path.parent}: no such directory"
    if args.threshold is not None and not 0 < args.threshold < 1:
        return f"--threshold must be a match probability between 0 and 1, got {args.threshold}"
    if args.report is not None and args.report.suffix.lower() not in REPORT_SUFFIXES:
        return f"--report must end in {' or '.join(REPORT_SUFFIXES)}: {args.report.name}"
    return None


def _render(evaluation: Any, args: argparse.Namespace) -> bytes:
    try:
        from enclave.datalab.report import render
    except ImportError as error:
        raise DataLabError(f"the report cannot be rendered here: {error}") from None

    rendered = render(evaluation, programme=args.programme, organisation=args.organisation)
    if args.report.suffix.lower() == ".pdf":
        pdf: bytes = rendered.pdf()
        return pdf
    html: str = rendered.html
    return html.encode("utf-8")


def _evaluate(args: argparse.Namespace) -> int:
    from enclave.datalab.cohort import CohortInvalid
    from enclave.linkage.errors import LinkageError

    problem = _check_options(args)
    if problem:
        return _fail(problem)
    if not args.cohort.is_file():
        return _fail(f"{args.cohort}: no such file")
    environ = dict(os.environ)
    if args.data_dir is not None:  # the database follows it unless configured elsewhere
        environ["ENCLAVE_DATA_DIR"] = str(args.data_dir)
    settings = Settings.load(environ, config_file=args.config)
    try:
        with _one_blas_thread():
            return _run(args, settings)
    except CohortInvalid as error:
        for line in error.report.problems[:MAX_SHOWN]:
            print(f"enclave: {line}", file=sys.stderr)
        hidden = len(error.report.problems) - MAX_SHOWN
        if hidden > 0:
            print(f"enclave: ... and {hidden} more problems", file=sys.stderr)
        return _fail(f"{error}; nothing written")
    except (DataLabError, LinkageError) as error:
        return _fail(f"{error}; nothing written")
    except OSError as error:
        return _fail(f"{error.filename or ''}: {error.strerror or error}")


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from enclave.datalab.cohort import check_cohort
    from enclave.datalab.evaluate import evaluate
    from enclave.datalab.locate import locate
    from enclave.linkage.zones import Zones

    say = _quiet if args.quiet else _say
    cohort = check_cohort(args.cohort, today=date.today(), label=args.cohort.name)
    report = cohort.report
    say(f"{report.rows_read} rows read, {report.rows_accepted} people accepted")
    say("matching the cohort against the justice records")
    ctx = open_context(settings) if args.actor else None
    try:
        located = locate(
            cohort,
            Zones(settings.data_dir),
            threshold=args.threshold,
            progress=not args.quiet,
            ctx=ctx,
            actor=args.actor or "",
        )
    finally:
        if ctx is not None:
            ctx.close()
    for stage in located.stages:
        say(f"{stage.stage}: {stage.count} ({stage.reason})")
    say(f"matching with a comparison pool of {len(located.pool)} people")
    evaluation = evaluate(
        located.cohort,
        located.pool,
        located.covariates,
        programme=args.programme,
        earlier_stages=located.stages,
    )
    estimates = {
        "programme": args.programme,
        "organisation": args.organisation,
        "validation": report.to_json(),
        **evaluation.to_json(),
    }
    files = [(args.json, (json.dumps(estimates, indent=2) + "\n").encode("utf-8"))]
    if args.report is not None:  # rendered before anything is written: no partial output
        files.append((args.report, _render(evaluation, args)))
    write_atomic(files)
    rate = evaluation.measure("rate").result
    print(
        f"{evaluation.n_treated} treated, {evaluation.n_comparison} comparison people "
        f"(effective {evaluation.effective_n:.0f}); reoffending rate difference "
        f"{100 * rate.difference:+.1f} pp [{100 * rate.ci_low:+.1f}, {100 * rate.ci_high:+.1f}]"
        f"{'' if evaluation.publishable else '; balance blocks publication'} -> {args.json}"
    )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``datalab`` to the ``enclave`` command."""
    datalab = sub.add_parser("datalab", help="Justice-Data-Lab-style impact evaluations")
    verbs = datalab.add_subparsers(dest="verb", required=True)
    run = verbs.add_parser("evaluate", help="evaluate a programme from its cohort file")
    run.add_argument("--cohort", type=Path, required=True, help="the organisation's CSV file")
    run.add_argument("--json", type=Path, required=True, help="estimates JSON to write")
    run.add_argument("--report", type=Path, help="report to write (.pdf or .html)")
    run.add_argument("--data-dir", type=Path, help="the enclave's data directory")
    run.add_argument("--config", type=Path, help="TOML settings file (or $ENCLAVE_CONFIG)")
    run.add_argument("--programme", default="the programme", help="the programme's name")
    run.add_argument("--organisation", default="the organisation", help="who runs it")
    run.add_argument("--threshold", type=float, help="match probability to accept a link")
    run.add_argument(
        "--as",
        dest="actor",
        metavar="EMAIL",
        help="audit-log the destruction of the cohort's identifiers as this person",
    )
    run.add_argument("--quiet", action="store_true", help="no progress on stderr")
    run.set_defaults(run=_evaluate)
