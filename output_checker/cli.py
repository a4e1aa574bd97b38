"""``output-checker``: check tables and models from the command line, and serve the review queue.

Exit codes: 0 the output passes; 1 it fails or needs review (the manifest says which);
2 the request could not be checked (bad input, named in one line on stderr). ``init`` creates
or upgrades the review queue's tables (after ``enclave admin init``); ``serve`` runs until
interrupted; ``workers`` runs only the outbox watcher and the release worker, until SIGTERM or
SIGINT (exit 0). All three exit 2 on a configuration error (no secret key, no current schema).
``microdata-risk`` writes risk aggregates (exit 0); ``anonymise`` exits 1 when the recipe's
target is not met, writing the report but not the data.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from output_checker.api import check_table
from output_checker.errors import CheckerError, InputError
from output_checker.manifest import write_json
from output_checker.parameters import CONVENTIONS, Parameters
from output_checker.status import Status

EXIT_PASS, EXIT_NOT_PASSED, EXIT_BAD_INPUT = 0, 1, 2


class _Checked(Protocol):
    @property
    def status(self) -> Status: ...

    def summary(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit with the bad-input code."""

    def error(self, message: str) -> Any:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="output-checker", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    table = sub.add_parser("check-table", help="tabulate a CSV/Parquet file and check every cell")
    table.add_argument("data", help="CSV or Parquet file of microdata")
    table.add_argument("--index", nargs="+", required=True, metavar="VAR")
    table.add_argument("--columns", nargs="+", default=[], metavar="VAR")
    table.add_argument("--values", metavar="VAR", help="analysis variable (needs --agg)")
    table.add_argument(
        "--agg",
        metavar="STAT",
        help="count, sum, mean, median, std, var, min, max, mode or quantile(q)",
    )
    table.add_argument("--entity", metavar="VAR", help="unit to protect (default: rows)")
    table.add_argument("--weights", metavar="VAR", help="sampling weights")
    table.add_argument("--margins", action="store_true", help="add 'All' totals")
    table.add_argument(
        "--hierarchical",
        action="store_true",
        help="add a subtotal for every nested prefix of the variables",
    )
    _common(table)
    table.add_argument(
        "--protect", action="store_true", help="apply secondary suppression (not available yet)"
    )

    protect = sub.add_parser("protect", help="protect an already tabulated table (wide CSV)")
    protect.add_argument("table", type=Path, help="wide CSV: row labels first, totals 'All'")
    protect.add_argument(
        "--primary",
        type=Path,
        required=True,
        metavar="MASK.csv",
        help="same-shaped CSV marking the unsafe cells with 1",
    )
    protect.add_argument(
        "--upl", type=float, default=1.0, help="protection level of every primary (default 1)"
    )
    protect.add_argument("--total-label", default="All")
    protect.add_argument(
        "--pair-threshold",
        type=float,
        metavar="T",
        help="frequency tables: also protect the sum of two primaries in one relation that "
        "is below T (tau-Argus's pair check)",
    )
    protect.add_argument("--json", type=Path, required=True, metavar="OUT")

    audit = sub.add_parser("audit", help="audit a suppression pattern of a tabulated table")
    audit.add_argument("table", type=Path, help="wide CSV: row labels first, totals 'All'")
    audit.add_argument("--suppressed", type=Path, required=True, metavar="MASK.csv")
    audit.add_argument("--total-label", default="All")
    audit.add_argument("--json", type=Path, required=True, metavar="OUT")

    risk = sub.add_parser(
        "microdata-risk", help="re-identification risk of key variables in a microdata file"
    )
    risk.add_argument("data", type=Path, help="CSV or Parquet file of microdata")
    risk.add_argument("--keys", nargs="+", required=True, metavar="VAR")
    risk.add_argument("--weight", metavar="VAR", help="sampling weights")
    risk.add_argument("--household", metavar="VAR", help="household id (household risk)")
    risk.add_argument(
        "--alpha", type=float, default=1.0, help="weight of a missing key value (default 1)"
    )
    risk.add_argument(
        "--max-global-risk",
        type=float,
        default=0.01,
        help="global risk for the risk threshold (default 0.01)",
    )
    risk.add_argument("--json", type=Path, required=True, metavar="OUT")

    anonymise = sub.add_parser(
        "anonymise", help="treat a microdata file with a TOML recipe until its target holds"
    )
    anonymise.add_argument("data", type=Path, help="CSV or Parquet file of microdata")
    anonymise.add_argument("--recipe", type=Path, required=True, metavar="RECIPE.toml")
    anonymise.add_argument("--out", type=Path, required=True, metavar="OUT.parquet")
    anonymise.add_argument("--report", type=Path, required=True, metavar="REPORT.html")

    model = sub.add_parser("check-model", help="check a saved statsmodels result (.save())")
    model.add_argument("model", help="file written by statsmodels' result.save()")
    model.add_argument(
        "--outputs",
        nargs="+",
        default=["coefficients"],
        metavar="PART",
        help="what will be released: coefficients, standard_errors, summary, "
        "residuals, fittedvalues, predictions, leverage, influence",
    )
    _common(model)

    init = sub.add_parser("init", help="create or upgrade the review queue's database tables")
    init.add_argument("--config", type=Path, help="TOML settings file (or $ENCLAVE_CONFIG)")

    serve = sub.add_parser("serve", help="run the output review queue (web pages, JSON API)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8100)
    serve.add_argument("--config", type=Path, help="TOML settings file (or $ENCLAVE_CONFIG)")
    serve.add_argument(
        "--no-workers",
        action="store_true",
        help="do not run the outbox watcher and the release worker in this process",
    )

    workers = sub.add_parser(
        "workers", help="run the outbox watcher and the release worker (no web app)"
    )
    workers.add_argument("--config", type=Path, help="TOML settings file (or $ENCLAVE_CONFIG)")
    return parser


def _workers(args: argparse.Namespace) -> int:
    """Run the background workers until signalled; configuration errors are one line and
    exit code 2."""
    import logging

    from sqlalchemy.exc import SQLAlchemyError

    from enclave.control.errors import ControlError
    from enclave.settings import Settings, SettingsError
    from output_checker.queue.web.workers import run_until_signalled

    # the workers report through logging (a failed scan, a released request): to the journal
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(levelname)s: %(message)s")
    try:
        return run_until_signalled(Settings.load(config_file=args.config))
    except ControlError as error:
        print(f"output-checker: error: {error} [{error.rule}]", file=sys.stderr)
    except SettingsError as error:
        print(f"output-checker: error: {error}", file=sys.stderr)
    except SQLAlchemyError as error:  # unreachable server, refused login: say which, briefly
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        print(f"output-checker: error: cannot open the database: {reason}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _serve(args: argparse.Namespace) -> int:
    """Run the review queue; configuration errors are one line and exit code 2."""
    from enclave.control.errors import ControlError  # Flask and the database only to serve
    from enclave.settings import Settings, SettingsError
    from output_checker.queue.web.serve import serve

    try:
        settings = Settings.load(config_file=args.config)
        return serve(settings, host=args.host, port=args.port, workers=not args.no_workers)
    except ControlError as error:
        print(f"output-checker: error: {error} [{error.rule}]", file=sys.stderr)
    except SettingsError as error:
        print(f"output-checker: error: {error}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _init(args: argparse.Namespace) -> int:
    """Create or upgrade the queue's tables in the control plane's database (which must be
    current: ``enclave admin init`` creates it); problems are one line and exit code 2."""
    from sqlalchemy.exc import SQLAlchemyError  # the database only to initialise

    from enclave.control.db import make_engine
    from enclave.control.errors import ControlError
    from enclave.settings import Settings, SettingsError
    from output_checker.queue import db

    try:
        settings = Settings.load(config_file=args.config)
        engine = make_engine(settings.database_url)
        try:
            before = db.current_revision(engine)
            db.upgrade(engine)
            after = db.current_revision(engine)
        finally:
            engine.dispose()
    except ControlError as error:
        print(f"output-checker: error: {error} [{error.rule}]", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SettingsError as error:
        print(f"output-checker: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SQLAlchemyError as error:  # unreachable server, refused login: say which, briefly
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        print(f"output-checker: error: cannot open the database: {reason}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if before == after:
        print(f"queue schema already at revision {after}")
    else:
        print(f"queue schema ready at revision {after} (was {before or 'empty'})")
    return EXIT_PASS


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--conventions", choices=CONVENTIONS, default="default")
    parser.add_argument(
        "--parameters",
        type=Path,
        metavar="JSON",
        help="project parameters (may only tighten the defaults)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        required=True,
        metavar="OUT",
        help="where to write the results manifest",
    )


def _parameters(args: argparse.Namespace) -> Parameters:
    defaults = Parameters.for_conventions(args.conventions)
    if args.parameters is None:
        return defaults
    try:
        overrides = json.loads(args.parameters.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"cannot read parameters file {args.parameters}: {error}") from None
    if not isinstance(overrides, dict):
        raise InputError(f"parameters file {args.parameters} must hold a JSON object")
    return defaults.tightened(**overrides)


def _run(args: argparse.Namespace) -> _Checked:
    params = _parameters(args)
    if args.command == "check-table":
        return check_table(
            args.data,
            index=args.index,
            columns=args.columns,
            values=args.values,
            aggfunc=args.agg,
            entity=args.entity,
            weights=args.weights,
            margins=args.margins,
            conventions=args.conventions,
            protect=args.protect,
            parameters=params,
            hierarchical=args.hierarchical,
        )
    from output_checker.safe_pickle import check_model_file

    model: _Checked = check_model_file(
        args.model, outputs=args.outputs, conventions=args.conventions, parameters=params
    )
    return model


def _tabulated(args: argparse.Namespace) -> int:
    from output_checker import tabulated

    if args.command == "protect":
        record = tabulated.protect_file(
            args.table, args.primary, args.upl, args.total_label, args.pair_threshold
        )
    else:
        record = tabulated.audit_file(args.table, args.suppressed, args.total_label)
    tabulated.write(args.json, record)
    print(record["summary"])
    return EXIT_PASS if record["status"] == "pass" else EXIT_NOT_PASSED


def _read_microdata(path: Path, columns: Sequence[str] | None) -> Any:
    """The named columns (all when None) of a CSV/Parquet file; problems are InputErrors."""
    from output_checker.io import read_data

    if columns is not None:
        return read_data(path, columns)
    import pandas as pd

    if not path.is_file():
        raise InputError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt", ".gz"):
            return pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise InputError(f"cannot read {path.name}: {str(error).splitlines()[0]}") from None
    raise InputError(f"unsupported data file type {suffix!r}: use .csv or .parquet")


def _parquet_ready(frame: Any) -> Any:
    """The frame with mixed-type categories (an integer code merged into a named group) as
    text, since Parquet columns hold one type."""
    import pandas as pd

    out = frame.copy()
    for name in out.columns:
        column = out[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            categories = column.cat.categories
            if len({type(c) for c in categories}) > 1:
                out[name] = column.cat.rename_categories([str(c) for c in categories])
        elif column.dtype == object and column.dropna().map(type).nunique() > 1:
            out[name] = column.astype(str).where(column.notna())
    return out


def _microdata_risk(args: argparse.Namespace) -> int:
    """Risk aggregates of the key variables as JSON (never a value per record)."""
    from output_checker.manifest import atomic_write_bytes
    from output_checker.microdata.problem import MicrodataProblem
    from output_checker.microdata.report import risk_summary
    from output_checker.microdata.risk.individual import measure_risk

    try:
        problem = MicrodataProblem(
            keys=args.keys, weight=args.weight, household=args.household, alpha=args.alpha
        )
        data = _read_microdata(args.data, problem.columns)
        problem.validate(data)
        weights = None if args.weight is None else data[args.weight].to_numpy(dtype=float)
        household = None if args.household is None else data[args.household]
        measures = measure_risk(
            data[list(args.keys)], weights, household, args.alpha, args.max_global_risk
        )
    except ValueError as error:
        raise InputError(str(error)) from None
    summary = {"keys": list(args.keys), "weight": args.weight, "alpha": args.alpha}
    summary.update(risk_summary(measures))
    atomic_write_bytes(args.json, (json.dumps(summary, indent=2) + "\n").encode("utf-8"))
    print(
        f"{summary['n']} records: {measures.expected_reidentifications:.4g} expected "
        f"re-identifications (global risk {measures.global_risk:.4g}), "
        f"{measures.kanon_violations(2)} violate 2-anonymity"
    )
    return EXIT_PASS


def _anonymise(args: argparse.Namespace) -> int:
    """Run a recipe; write the report always and the data only when the target holds."""
    import io

    from output_checker.manifest import atomic_write_bytes
    from output_checker.microdata.recipe import Recipe
    from output_checker.microdata.report import render_report, write_report
    from output_checker.microdata.workflow import Workflow

    try:
        recipe = Recipe.load(args.recipe)
        workflow = Workflow(_read_microdata(args.data, None), recipe.problem)
        result = workflow.treat_until(recipe.target, recipe)
        html = render_report(workflow, recipe.target, result)
        buffer = io.BytesIO()
        if result.met:
            _parquet_ready(workflow.data).to_parquet(buffer, index=False)
    except (ValueError, TypeError) as error:  # pyarrow's conversion errors are ValueErrors
        raise InputError(str(error).splitlines()[0] if str(error) else repr(error)) from None
    write_report(args.report, html)
    if not result.met:
        print(f"output-checker: {result.message}", file=sys.stderr)
        return EXIT_NOT_PASSED
    atomic_write_bytes(args.out, buffer.getvalue())
    print(f"{result.message}; wrote {args.out.name} and {args.report.name}")
    return EXIT_PASS


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "init":
        return _init(args)
    if args.command == "workers":
        return _workers(args)
    try:
        if args.command in ("protect", "audit"):
            return _tabulated(args)
        if args.command == "microdata-risk":
            return _microdata_risk(args)
        if args.command == "anonymise":
            return _anonymise(args)
        result = _run(args)
        write_json(args.json, result.to_dict())
    except CheckerError as error:
        print(f"output-checker: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(result.summary())
    return EXIT_PASS if result.status == Status.PASS else EXIT_NOT_PASSED


if __name__ == "__main__":
    sys.exit(main())
