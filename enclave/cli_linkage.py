"""``enclave synth`` and ``enclave link ...``: the linkage unit's command line.

Argument parsing and wiring only. Bad input (files, settings, keys) prints one line per
problem with its file and line on stderr and exits with code 2; nothing is registered then.
Settings (the data directory, the database) come from ``ENCLAVE_`` variables and the TOML
file named by ``--config`` or ``ENCLAVE_CONFIG``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from enclave.control.context import open_context
from enclave.settings import Settings

MAX_SHOWN = 50


def _fail(message: str) -> int:
    print(f"enclave: error: {message}", file=sys.stderr)
    return 2


def _guarded(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn linkage refusals into messages and exit code 2 (control-plane refusals are
    handled by ``enclave.cli``)."""

    def wrapped(args: argparse.Namespace) -> int:
        from enclave.linkage.errors import InvalidInput, LinkageError

        try:
            return run(args)
        except InvalidInput as error:
            for problem in error.errors[:MAX_SHOWN]:
                print(f"enclave: {problem}", file=sys.stderr)
            hidden = len(error.errors) - MAX_SHOWN
            if hidden > 0:
                print(f"enclave: ... and {hidden} more problems", file=sys.stderr)
            counts = getattr(error, "counts", ())
            for count in counts:
                print(
                    f"enclave: {count.file}: {count.rows} rows read, "
                    f"{count.bad_rows} with problems",
                    file=sys.stderr,
                )
            for folder in getattr(error, "quarantine", ()):
                print(f"enclave: quarantined rows and error report in {folder}", file=sys.stderr)
            return _fail(f"{len(error.errors)} input problem(s); nothing was linked or registered")
        except LinkageError as error:
            return _fail(str(error))
        except OSError as error:
            return _fail(f"{error.filename or ''}: {error.strerror or error}")

    return wrapped


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.load(config_file=getattr(args, "config", None))


@_guarded
def _synth(args: argparse.Namespace) -> int:
    from enclave.linkage.deliveries import write_synthetic
    from enclave.synth.ministries import generate_ministries

    if args.population < 1:
        return _fail("--population must be at least 1")
    data = generate_ministries(args.population, seed=args.seed)
    summary = write_synthetic(data, args.out, progress=not args.quiet)
    for source, counts in summary.items():
        rows = ", ".join(f"{name} {n:,}" for name, n in counts.items())
        print(f"{source}: {rows}")
    print(f"deliveries in {args.out / 'deliveries'}; truth (kept apart) in {args.out / 'truth'}")
    return 0


def _approved_inputs(args: argparse.Namespace, names_dir: Path) -> list[Path]:
    """The files to link: each input resolved to a custodian-approved dataset version
    (``dataset:SLUG``, or a file whose content is one), recorded as one audited use; or, with
    ``--unregistered-input``, the operator's own files taken as given (never dataset: specs)."""
    from enclave.control.service.ingress import DATASET_PREFIX, resolve_linkage_inputs
    from enclave.linkage.errors import LinkageError

    if args.unregistered_input:
        if any(spec.startswith(DATASET_PREFIX) for spec in args.files):
            raise LinkageError("dataset:SLUG inputs are resolved only without --unregistered-input")
        print(
            "enclave: warning: --unregistered-input: the files are not checked against the "
            "approved dataset versions; never use it for enclave data",
            file=sys.stderr,
        )
        return [Path(spec) for spec in args.files]
    if not args.actor:
        raise LinkageError(
            "--as EMAIL is required to link dataset versions (or --unregistered-input)"
        )
    settings = _settings(args)
    ctx = open_context(settings)
    try:
        resolved = resolve_linkage_inputs(ctx, args.actor, args.files)
    finally:
        ctx.close()
    paths = []
    for spec, item in zip(args.files, resolved, strict=True):
        if item.path.suffix.lower() != ".csv":
            raise LinkageError(f"{spec}: link files reads CSV; this version is not a CSV file")
        if spec.startswith(DATASET_PREFIX):
            # named after the dataset, so its records are labelled with its slug
            names_dir.mkdir(parents=True, exist_ok=True)
            alias = names_dir / f"{item.dataset}.csv"
            alias.unlink(missing_ok=True)
            alias.symlink_to(item.path.resolve())
            paths.append(alias)
        else:
            paths.append(item.path)
    return paths


@_guarded
def _files(args: argparse.Namespace) -> int:
    from enclave.linkage.zones import remove_tree

    names = args.out.parent / f".{args.out.name}.inputs"
    try:
        return _link_files(args, _approved_inputs(args, names))
    finally:
        remove_tree(names)


def _link_files(args: argparse.Namespace, inputs: list[Path]) -> int:
    from enclave.linkage.columns import parse_overrides
    from enclave.linkage.files import link_files, write_links, write_report
    from enclave.linkage.model import TrainedModel

    model = TrainedModel.load(args.model) if args.model else None
    work = args.out.parent / f".{args.out.name}.work"
    result = link_files(
        inputs,
        id_column=args.id_column,
        overrides=parse_overrides(args.column),
        date_format=args.date_format,
        encoding=args.encoding,
        dedupe=args.dedupe,
        backend=args.backend,
        threshold=args.threshold,
        model=model,
        work_dir=work,
        invalid_dates=args.invalid_dates,
        progress=not args.quiet,
    )
    if work.is_dir() and not any(work.iterdir()):
        work.rmdir()
    for item in result.inputs:
        for note in item.notes:
            print(f"enclave: {note} (read as missing)", file=sys.stderr)
    write_links(result.links, args.out)
    if args.save_model:
        result.model.save(args.save_model)
    if args.report:
        write_report(result, args.report)
    clusters = result.links["cluster_id"].nunique()
    print(
        f"{len(result.links):,} records in {clusters:,} clusters "
        f"({result.pairs_scored:,} pairs scored) -> {args.out}"
    )
    return 0


@_guarded
def _ingest(args: argparse.Namespace) -> int:
    from enclave.linkage.ingest import ingest_delivery
    from enclave.linkage.zones import Zones

    if args.unregistered_input:
        print(
            "enclave: warning: --unregistered-input: the delivery is not checked against the "
            "approved dataset versions; never use it for enclave data",
            file=sys.stderr,
        )
    settings = _settings(args)
    ctx = open_context(settings)
    try:
        result = ingest_delivery(
            ctx,
            args.actor,
            Zones(settings.data_dir),
            args.delivery,
            custodian=args.custodian or args.actor,
            purposes=args.purpose,
            progress=not args.quiet,
            unregistered_input=args.unregistered_input,
        )
    finally:
        ctx.close()
    for count in result.counts:
        print(f"{count.file}: {count.rows:,} rows")
    print(f"registered: {', '.join(result.registered) or 'nothing new (already registered)'}")
    return 0


@_guarded
def _run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from enclave.linkage.errors import LinkageError
    from enclave.linkage.model import TrainedModel
    from enclave.linkage.pipeline import run_linkage
    from enclave.linkage.settings import LinkageSettings
    from enclave.linkage.zones import Zones

    zones = Zones(_settings(args).data_dir)
    model = TrainedModel.load(args.model) if args.model else None
    chosen = None
    if args.settings:
        try:
            chosen = LinkageSettings.from_dict(json.loads(args.settings.read_text("utf-8")))
        except ValueError as error:
            raise LinkageError(f"cannot read {args.settings}: {error}") from None
    if args.backend and model is not None:
        model = replace(model, settings=replace(model.settings, backend=args.backend))
    elif args.backend:
        from enclave.linkage.pipeline import load_sources, settings_for

        chosen = replace(chosen or settings_for(load_sources(zones)), backend=args.backend)
    truth = None
    if args.truth:
        truth = pd.read_csv(args.truth, dtype=str).rename(columns={"person_id": "entity"})
    result = run_linkage(zones, settings=chosen, model=model, truth=truth, progress=not args.quiet)
    print(
        f"linked {sum(result.sources.values()):,} records from {len(result.sources)} sources: "
        f"{result.pairs_scored:,} pairs scored, {result.persons:,} persons"
    )
    if result.true_clusters is not None:
        s = result.true_clusters
        print(
            f"against the truth: precision {s.precision:.4f}, recall {s.recall:.4f}, F1 {s.f1:.4f}"
        )
    print(f"report: {result.report}")
    return 0


@_guarded
def _cohort(args: argparse.Namespace) -> int:
    from enclave.linkage.pipeline import link_cohort
    from enclave.linkage.zones import Zones

    result = link_cohort(
        Zones(_settings(args).data_dir),
        args.source,
        threshold=args.threshold,
        progress=not args.quiet,
    )
    print(
        f"{result.source}: {result.records:,} records, {result.linked:,} linked to known "
        f"persons, {result.new_persons:,} new"
    )
    return 0


def _treatments(given: list[str]) -> dict[str, tuple[Any, ...]]:
    """``DATASET=RECIPE.toml`` options as each dataset's treatment steps."""
    from enclave.linkage.errors import LinkageError
    from output_checker.microdata.recipe import Recipe

    found: dict[str, tuple[Any, ...]] = {}
    for option in given:
        dataset, _, path = option.partition("=")
        if not dataset or not path:
            raise LinkageError(f"--treatment {option!r}: expected DATASET=RECIPE.toml")
        try:
            found[dataset] = Recipe.loads(Path(path).read_text(encoding="utf-8")).steps
        except (OSError, ValueError) as error:
            raise LinkageError(f"--treatment {option!r}: {error}") from None
    return found


@_guarded
def _extract(args: argparse.Namespace) -> int:
    from enclave.linkage.extracts import build_extract
    from enclave.linkage.keys import load_master_key
    from enclave.linkage.zones import Zones

    settings = _settings(args)
    master = load_master_key()
    ctx = open_context(settings)
    try:
        result = build_extract(
            ctx,
            args.actor,
            Zones(settings.data_dir),
            args.project,
            master_key=master,
            custodian=args.custodian,
            treatments=_treatments(args.treatment),
            progress=not args.quiet,
        )
    finally:
        ctx.close()
    for f in result.files:
        print(f"{f.file}: {f.rows:,} rows ({f.unlinked_rows:,} unlinked left out)")
    for risk in result.risks:
        if risk.quasi_identifiers:
            blanked = sum(risk.suppressed.values())
            print(
                f"{risk.dataset}: {risk.k}-anonymous on {', '.join(risk.quasi_identifiers)} "
                f"({blanked:,} values suppressed)"
            )
    print(f"extract in {result.directory}; manifest registered as {result.registered_as}")
    return 0


@_guarded
def _keygen(args: argparse.Namespace) -> int:
    from enclave.linkage.keys import MASTER_KEY_FILE_ENV, generate_master_key

    generate_master_key(args.out)
    print(f"master key written to {args.out}; set {MASTER_KEY_FILE_ENV}={args.out}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``synth`` and ``link`` to the ``enclave`` command."""
    synth = sub.add_parser("synth", help="write synthetic ministry deliveries with known truth")
    synth.add_argument("--population", type=int, default=100_000)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--out", type=Path, required=True)
    synth.add_argument("--quiet", action="store_true", help="no progress bars")
    synth.set_defaults(run=_synth)

    link = sub.add_parser("link", help="record linkage (the linkage unit)")
    verbs = link.add_subparsers(dest="verb", required=True)

    files = verbs.add_parser(
        "files", help="link approved dataset versions (CSV) on their identifier columns"
    )
    files.add_argument(
        "files",
        nargs="+",
        metavar="INPUT",
        help="dataset:SLUG (its newest approved version) or a file that is an approved version",
    )
    files.add_argument("--as", dest="actor", metavar="EMAIL", help="the admin linking")
    files.add_argument("--config", type=Path)
    files.add_argument(
        "--unregistered-input",
        action="store_true",
        help="link files that are no dataset version (test data), unchecked and unrecorded",
    )
    files.add_argument("--id-column", required=True, help="the record id column of every file")
    files.add_argument(
        "--column", action="append", default=[], metavar="ROLE=NAME", help="override a role"
    )
    files.add_argument("--out", type=Path, required=True, help="links CSV to write")
    files.add_argument("--date-format", help="strptime format of dates of birth (default: guess)")
    files.add_argument("--encoding", default="utf-8")
    files.add_argument("--dedupe", action="store_true", help="files may repeat a person")
    files.add_argument(
        "--invalid-dates",
        choices=("error", "missing"),
        default="error",
        help="refuse impossible dates of birth (default) or read them as missing, listed",
    )
    files.add_argument("--backend", choices=("duckdb", "spark"), default="duckdb")
    files.add_argument("--threshold", type=float, help="cluster match probability")
    files.add_argument("--model", type=Path, help="use a saved model instead of training")
    files.add_argument("--save-model", type=Path, help="write the trained model here")
    files.add_argument("--report", type=Path, help="write the HTML quality report here")
    files.add_argument("--quiet", action="store_true")
    files.set_defaults(run=_files)

    for name, helptext, handler in (
        ("ingest", "validate and ingest a delivery of custodian-approved versions", _ingest),
        ("extract", "write a project's research extract from its grants", _extract),
    ):
        verb = verbs.add_parser(name, help=helptext)
        verb.add_argument("--as", dest="actor", required=True, metavar="EMAIL")
        verb.add_argument("--custodian", metavar="EMAIL", help="custodian of what is registered")
        verb.add_argument("--config", type=Path)
        verb.add_argument("--quiet", action="store_true")
        verb.set_defaults(run=handler)
        if name == "ingest":
            verb.add_argument(
                "delivery",
                type=Path,
                help="its files must be dataset versions approved by their custodian",
            )
            verb.add_argument("--purpose", action="append", required=True)
            verb.add_argument(
                "--unregistered-input",
                action="store_true",
                help="ingest a delivery that is no approved version (generated test data), "
                "unchecked",
            )
        else:
            verb.add_argument("--project", required=True)
            verb.add_argument(
                "--treatment",
                action="append",
                default=[],
                metavar="DATASET=RECIPE.toml",
                help="treatment steps for a dataset's table before its microdata policy "
                "is checked (the recipe's [[step]] tables; repeatable)",
            )

    run = verbs.add_parser("run", help="link every ingested source into the person index")
    run.add_argument("--model", type=Path, help="use a saved model instead of training")
    run.add_argument("--settings", type=Path, help="linkage settings JSON")
    run.add_argument("--backend", choices=("duckdb", "spark"))
    run.add_argument("--truth", type=Path, help="truth links CSV (synthetic data)")
    run.add_argument("--config", type=Path)
    run.add_argument("--quiet", action="store_true")
    run.set_defaults(run=_run)

    cohort = verbs.add_parser("cohort", help="link one new ingested source incrementally")
    cohort.add_argument("source")
    cohort.add_argument("--threshold", type=float)
    cohort.add_argument("--config", type=Path)
    cohort.add_argument("--quiet", action="store_true")
    cohort.set_defaults(run=_cohort)

    keygen = verbs.add_parser("keygen", help="write a new linkage master key file")
    keygen.add_argument("--out", type=Path, required=True)
    keygen.set_defaults(run=_keygen)
