"""The researcher's session: ACRO's calls, each checked, protected, explained and recorded.

``Session`` holds the checking settings, the registered datasets, the outputs made so far and
where bundles go. Every call returns the researcher's result at once (the protected table, the
fitted model, the plot), prints a short plain-language summary of the rules that fired, and
records the output with its evidence. Nothing is recorded when a call is refused.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from enclave.analysis import bundle, models, plots, survival, tables
from enclave.analysis.context import Context, Made
from enclave.analysis.datasets import (
    Datasets,
    FrameTracker,
    Source,
    apply_filter,
    check_filter,
    parse_filters,
)
from enclave.analysis.errors import AnalysisError
from enclave.analysis.outputs import Output, OutputFile, OutputRegistry, Provenance
from enclave.analysis.submit import create_request
from enclave.analysis.summaries import summarise
from output_checker import CheckerError, Parameters
from output_checker.status import Status

PROJECT = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")  # the queue's project slug
CUSTOM_LABEL = "no recipe: a custom file, judged by a reviewer"
RECORD_LEVEL_LABEL = "record-level data: the project's microdata policy, then a reviewer"


@dataclass(frozen=True)
class Submission:
    """Where a submitted bundle went: the queue's API (``request_id``, and the request's
    ``status``: ``pending`` until the researcher submits it in the queue, or ``submitted``)
    or the outbox (``bundle``, which the queue's watcher turns into a pending request)."""

    via: str  # "api" or "outbox"
    request_id: str | None = None
    bundle: Path | None = None
    status: str | None = None


class Session:
    """One researcher's analysis session.

    ``project`` is the project's slug; ``outbox`` the directory bundles are written to (the
    one writable channel out of a sandboxed session); ``datasets`` the project's registered
    data (a directory of ``<name>.parquet``/``.csv`` files, or a mapping of names to files).
    ``suppress`` turns on protection (secondary suppression with audit intervals);
    ``conventions`` is ``"default"`` or ``"acro"``; ``parameters`` the project's (tightened)
    checker parameters; ``entity`` the column naming the unit protected when a dataset does
    not declare one; ``require_recipes`` refuses outputs not built from a registered dataset.
    ``queue_url`` and ``queue_token`` let :meth:`submit` create the request over HTTP.
    ``echo`` receives each summary (``print`` by default; ``quiet=True`` silences it).
    """

    def __init__(
        self,
        project: str = "default",
        outbox: str | Path = "outbox",
        datasets: str | Path | Mapping[str, str | Path] | None = None,
        *,
        suppress: bool = True,
        conventions: str = "default",
        parameters: Parameters | None = None,
        entity: str | None = None,
        require_recipes: bool = False,
        queue_url: str | None = None,
        queue_token: str | None = None,
        quiet: bool = False,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        if not isinstance(project, str) or not PROJECT.match(project):
            raise AnalysisError(f"project {project!r} is not a project slug")
        if conventions not in ("default", "acro"):
            raise AnalysisError("conventions must be 'default' or 'acro'")
        if parameters is not None and parameters.conventions != conventions:
            raise AnalysisError("the parameters are for other conventions than the session's")
        self.project = project
        self.outbox = Path(outbox)
        self.datasets = Datasets(datasets)
        self.suppress = suppress
        self.conventions = conventions
        self.parameters = parameters
        self.entity = entity
        self.require_recipes = require_recipes
        self.queue_url = queue_url
        self._queue_token = queue_token
        self._echo = echo or (lambda text: print(text, file=sys.stdout))
        self.quiet = quiet
        self.outputs = OutputRegistry()
        self._tracker = FrameTracker()
        self.last_bundle: Path | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Session:
        """A session configured by ``ENCLAVE_PROJECT``, ``ENCLAVE_OUTBOX``,
        ``ENCLAVE_DATASETS``, ``ENCLAVE_ENTITY``, ``ENCLAVE_QUEUE_URL`` and
        ``ENCLAVE_QUEUE_TOKEN`` (what the enclave sets in a research session)."""
        env = os.environ if environ is None else environ
        return cls(
            project=env.get("ENCLAVE_PROJECT", "default"),
            outbox=env.get("ENCLAVE_OUTBOX", "outbox"),
            datasets=env.get("ENCLAVE_DATASETS") or None,
            entity=env.get("ENCLAVE_ENTITY") or None,
            queue_url=env.get("ENCLAVE_QUEUE_URL") or None,
            queue_token=env.get("ENCLAVE_QUEUE_TOKEN") or None,
        )

    def __repr__(self) -> str:
        return (
            f"Session(project={self.project!r}, outbox={str(self.outbox)!r}, "
            f"outputs={len(self.outputs)}, suppress={self.suppress})"
        )

    # ----- data ------------------------------------------------------------------------------
    def list_datasets(self) -> list[str]:
        """Names of the project's registered datasets."""
        return self.datasets.names()

    def load(
        self,
        name: str,
        *,
        columns: Sequence[str] | None = None,
        filters: Iterable[Any] = (),
        entity: str | None = None,
    ) -> pd.DataFrame:
        """Read registered dataset ``name`` (optionally only ``columns``, and only the rows
        passing ``filters`` such as ``("year", ">=", 2020)``); ``entity`` names the column of
        the unit protected. Tables from the returned frame carry a recipe."""
        rules = parse_filters(filters)
        frame, version = self.datasets.read(name)
        wanted = list(columns) if columns is not None else list(frame.columns)
        needed = [*wanted, *(r.column for r in rules), *([entity] if entity else [])]
        missing = [c for c in dict.fromkeys(needed) if c not in frame.columns]
        if missing:
            raise AnalysisError(f"column(s) not in {name}: {', '.join(map(repr, missing))}")
        for rule in rules:
            frame = apply_filter(frame, rule)
        keep = list(dict.fromkeys([*wanted, *([entity] if entity else [])]))
        frame = frame[keep]
        self._tracker.register(frame, Source(name, version, rules, entity), frame.columns)
        return frame

    def where(self, frame: pd.DataFrame, column: str, op: str, value: Any = None) -> pd.DataFrame:
        """The rows of ``frame`` where ``column op value`` (ops ``== != < <= > >= in not_in
        is_null not_null``). From a registered frame, the filter joins its recipe."""
        rule = check_filter(column, op, value)
        if column not in frame.columns:
            raise AnalysisError(f"filter column {column!r} is not in the data")
        source = self._tracker.source_of({column: frame[column]})
        kept = self._tracker.matching_columns(frame, source) if source else []
        out = apply_filter(frame, rule)
        if source is not None and kept:
            self._tracker.register(out, replace(source, filters=(*source.filters, rule)), kept)
        return out

    # ----- recording -------------------------------------------------------------------------
    def _context(self) -> Context:
        return Context(
            conventions=self.conventions,
            parameters=self.parameters,
            suppress=self.suppress,
            entity=self.entity,
            require_recipes=self.require_recipes,
            tracker=self._tracker,
        )

    def _record(self, made: Made) -> Any:
        name = self.outputs.next_name()
        statuses = [Status.from_label(f.record["status"]) for f in made.files if f.record]
        status = max(statuses) if statuses else Status.REVIEW
        summary = self._summary(name, made)
        output = Output(
            name=name,
            method=made.method,
            command=made.command,
            status=status,
            summary=summary,
            files=made.files,
            provenance=made.provenance,
        )
        self.outputs.add(output)
        if not self.quiet:
            self._echo(summary)
        return made.value

    @staticmethod
    def _summary(name: str, made: Made) -> str:
        # a plot's record repeats its table's, so only the tables are summarised
        checked = [(f.label, f.record) for f in made.files
                   if f.record is not None and f.extension != "png"]  # fmt: skip
        return summarise(name, made.method, checked, made.provenance.label)

    # ----- tables ----------------------------------------------------------------------------
    def crosstab(self, index: Any, columns: Any, values: Any = None, rownames: Any = None,
                 colnames: Any = None, aggfunc: Any = None, margins: bool = False,
                 margins_name: str = "All", dropna: bool = True, normalize: bool | str = False,
                 show_suppressed: bool = False, *, entity: Any = None,
                 round_to: int | None = None) -> pd.DataFrame:  # fmt: skip
        """``pd.crosstab`` (ACRO's signature), checked and protected; ``round_to=10``
        publishes every value rounded to base 10 (needs a registered dataset)."""
        del dropna, show_suppressed  # as in ACRO: empty categories are always shown
        made = tables.crosstab(
            self._context(), index, columns, values, rownames, colnames, aggfunc, margins,
            margins_name, normalize, entity, round_to=round_to,
        )  # fmt: skip
        return self._record(made)  # type: ignore[no-any-return]

    def pivot_table(self, data: pd.DataFrame, values: Any = None, index: Any = None,
                    columns: Any = None, aggfunc: Any = "mean", fill_value: Any = None,
                    margins: bool = False, dropna: bool = True, margins_name: str = "All",
                    observed: bool = False, sort: bool = True, *, entity: Any = None,
                    round_to: int | None = None) -> pd.DataFrame:  # fmt: skip
        """``pd.pivot_table`` (ACRO's signature), checked and protected; ``round_to``
        as for :meth:`crosstab`."""
        del dropna, observed, sort
        made = tables.pivot_table(
            self._context(), data, values, index, columns, aggfunc, fill_value, margins,
            margins_name, entity, round_to=round_to,
        )  # fmt: skip
        return self._record(made)  # type: ignore[no-any-return]

    def groupby_agg(self, data: pd.DataFrame, by: Any, values: Any, aggfunc: Any = "mean",
                    *, margins: bool = False, entity: Any = None,
                    round_to: int | None = None) -> pd.DataFrame:  # fmt: skip
        """``data.groupby(by)[values].agg(aggfunc)``, checked and protected; ``round_to``
        as for :meth:`crosstab`."""
        made = tables.groupby_agg(self._context(), data, by, values, aggfunc, margins, entity,
                                  round_to=round_to)  # fmt: skip
        return self._record(made)  # type: ignore[no-any-return]

    def describe(self, data: pd.DataFrame, columns: Any = None, *, by: Any = None,
                 entity: Any = None) -> pd.DataFrame:  # fmt: skip
        """``data.describe()`` with every statistic checked (unsafe ones suppressed)."""
        made = tables.describe(self._context(), data, columns, by, entity)
        return self._record(made)  # type: ignore[no-any-return]

    # ----- models ----------------------------------------------------------------------------
    def _model(self, kind: str, endog: Any, exog: Any, data: Any, options: dict[str, Any]) -> Any:
        return self._record(models.fit(self._context(), kind, endog, exog, data=data,
                                       options=options))  # fmt: skip

    def ols(self, endog: Any, exog: Any = None, missing: str = "none",
            hasconst: bool | None = None, *, data: Any = None, **kwargs: Any) -> Any:  # fmt: skip
        """Ordinary least squares: ``ols(y, X)`` or ``ols("y ~ x + C(g)", data=df)``."""
        options = (
            kwargs
            if isinstance(endog, str)
            else {"missing": missing, "hasconst": hasconst, **kwargs}
        )
        return self._model("ols", endog, exog, data, options)

    def olsr(self, formula: str, data: Any, subset: Any = None, drop_cols: Any = None,
             **kwargs: Any) -> Any:  # fmt: skip
        """OLS with the formula API (ACRO's ``olsr``)."""
        return self._model("ols", formula, None, data,
                           {"subset": subset, "drop_cols": drop_cols, **kwargs})  # fmt: skip

    def logit(self, endog: Any, exog: Any = None, missing: str = "none",
              check_rank: bool = True, *, data: Any = None, **kwargs: Any) -> Any:  # fmt: skip
        """Logistic regression: ``logit(y, X)`` or ``logit("y ~ x", data=df)``."""
        options = (
            kwargs
            if isinstance(endog, str)
            else {"missing": missing, "check_rank": check_rank, **kwargs}
        )
        return self._model("logit", endog, exog, data, options)

    def logitr(self, formula: str, data: Any, subset: Any = None, drop_cols: Any = None,
               **kwargs: Any) -> Any:  # fmt: skip
        """Logit with the formula API (ACRO's ``logitr``)."""
        return self._model("logit", formula, None, data,
                           {"subset": subset, "drop_cols": drop_cols, **kwargs})  # fmt: skip

    def probit(self, endog: Any, exog: Any = None, missing: str = "none",
               check_rank: bool = True, *, data: Any = None, **kwargs: Any) -> Any:  # fmt: skip
        """Probit regression: ``probit(y, X)`` or ``probit("y ~ x", data=df)``."""
        options = (
            kwargs
            if isinstance(endog, str)
            else {"missing": missing, "check_rank": check_rank, **kwargs}
        )
        return self._model("probit", endog, exog, data, options)

    def probitr(self, formula: str, data: Any, subset: Any = None, drop_cols: Any = None,
                **kwargs: Any) -> Any:  # fmt: skip
        """Probit with the formula API (ACRO's ``probitr``)."""
        return self._model("probit", formula, None, data,
                           {"subset": subset, "drop_cols": drop_cols, **kwargs})  # fmt: skip

    def glm(self, endog: Any, exog: Any = None, family: Any = None, *, data: Any = None,
            **kwargs: Any) -> Any:  # fmt: skip
        """A generalised linear model: ``glm(y, X, family=sm.families.Poisson())`` or
        ``glm("y ~ x", data=df, family=...)``."""
        return self._model("glm", endog, exog, data, {"family": family, **kwargs})

    def glmr(self, formula: str, data: Any, family: Any = None, **kwargs: Any) -> Any:
        """A GLM with the formula API."""
        return self._model("glm", formula, None, data, {"family": family, **kwargs})

    # ----- survival and plots ----------------------------------------------------------------
    def surv_func(self, time: Any, status: Any, output: str = "table", entry: Any = None,
                  title: str | None = None, freq_weights: Any = None, exog: Any = None,
                  bw_factor: float = 1.0, filename: str = "kaplan-meier.png", *,
                  group: Any = None, data: pd.DataFrame | None = None,
                  entity: Any = None) -> Any:  # fmt: skip
        """Kaplan-Meier (ACRO's ``surv_func``): the protected step table, or a plot of it."""
        del bw_factor, filename  # the file is named after the output in the bundle
        made = survival.surv_func(
            self._context(), time, status, output, group=group, data=data, entity=entity,
            title=title, unsupported={"entry": entry, "freq_weights": freq_weights,
                                      "exog": exog},
        )  # fmt: skip
        return self._record(made)

    def hist(self, data: pd.DataFrame, column: str, bins: Any = 10, *, entity: Any = None,
             title: str | None = None, filename: str = "histogram.png",
             **kwargs: Any) -> plots.CheckedPlot:  # fmt: skip
        """A histogram from checked bin counts; give fixed bin edges (``bins=[0, 10, 20]``)."""
        _ignored_style(kwargs, "hist")
        made = plots.hist(self._context(), data, column, bins, entity=entity, title=title)
        return self._record(made)  # type: ignore[no-any-return]

    def bar(self, data: pd.DataFrame, column: str, by: str | None = None, *,
            entity: Any = None, title: str | None = None) -> plots.CheckedPlot:  # fmt: skip
        """A bar chart of counts drawn from the protected frequency table."""
        made = plots.bar(self._context(), data, column, by, entity=entity, title=title)
        return self._record(made)  # type: ignore[no-any-return]

    # ----- session management ----------------------------------------------------------------
    def custom_output(self, filename: str | Path, comment: str = "") -> bool:
        """Add a file the checker has no rules for: recorded with its hash for review.
        Returns True (ACRO's contract); refuses types the queue does not accept."""
        from output_checker import check_file

        path = Path(filename)
        if not path.is_file():
            raise AnalysisError(f"output file not found: {path}")
        extension = path.suffix.lower().lstrip(".")
        bundle.check_file_name(f"custom.{extension}")
        data = path.read_bytes()
        if not data or len(data) > bundle.MAX_FILE_BYTES:
            raise AnalysisError(f"{path.name} must hold 1 to {bundle.MAX_FILE_BYTES} bytes")
        try:
            record = check_file(path, "custom").to_dict()
        except CheckerError as error:
            raise AnalysisError(str(error)) from None
        if record["output"]["sha256"] != hashlib.sha256(data).hexdigest():
            raise AnalysisError(f"{path.name} changed while it was being recorded")
        file = OutputFile(path.stem[:40] or "file", extension, data, record)
        made = Made(True, (file,), Provenance(False, CUSTOM_LABEL), "custom",
                    f"custom_output({path.name!r})")  # fmt: skip
        name = self.outputs.next_name()
        self._record(made)
        if comment:
            self.outputs.add_comment(name, comment)
        return True

    def record_level_output(self, data: pd.DataFrame, comment: str = "") -> str:
        """Add record-level data (one row per person) as an output: held to the project's
        microdata policy (k-anonymity on its declared quasi-identifiers) now and again by the
        queue, and never released without a reviewer. Returns the checker's verdict line;
        a refused table is still recorded, so the reason shows in the outputs."""
        from output_checker import check_file
        from output_checker.record_level import RECORD_LEVEL

        if not isinstance(data, pd.DataFrame) or data.empty:
            raise AnalysisError("record_level_output needs a non-empty DataFrame")
        content = data.to_csv(index=False).encode()
        if len(content) > bundle.MAX_FILE_BYTES:
            raise AnalysisError(f"the records take more than {bundle.MAX_FILE_BYTES} bytes")
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "records.csv"
            path.write_bytes(content)
            result = check_file(path, RECORD_LEVEL, self.parameters)
        record = result.to_dict()
        file = OutputFile("records", "csv", content, record)
        made = Made(None, (file,), Provenance(False, RECORD_LEVEL_LABEL), RECORD_LEVEL,
                    "record_level_output(...)")  # fmt: skip
        name = self.outputs.next_name()
        self._record(made)
        if comment:
            self.outputs.add_comment(name, comment)
        return result.summary()

    def rename_output(self, old: str, new: str) -> None:
        """Rename an output (the name becomes its group and file names in the bundle)."""
        self.outputs.rename(old, new)

    def remove_output(self, key: str) -> None:
        """Drop an output from the session; it will not be bundled."""
        self.outputs.remove(key)

    def add_comments(self, output: str, comment: str) -> None:
        """Add a comment for the reviewers to an output."""
        self.outputs.add_comment(output, comment)

    def add_exception(self, output: str, reason: str) -> None:
        """Ask for an output to be released although it does not pass, saying why."""
        self.outputs.set_exception(output, reason)

    def print_outputs(self) -> str:
        """Every recorded output with its status, files, source, comments and exception."""
        lines = []
        for o in self.outputs:
            lines.append(f"{o.name} ({o.method}): {o.status.label}")
            lines.append(f"  command: {o.command}")
            lines.append(f"  files: {', '.join(o.file_names())}")
            lines.append(f"  source: {o.provenance.label}")
            lines += [f"  comment: {c}" for c in o.comments]
            if o.exception:
                lines.append(f"  exception requested: {o.exception}")
        text = "\n".join(lines) or "no outputs yet"
        if not self.quiet:
            self._echo(text)
        return text

    def finalise(self, path: str | Path | None = None, ext: str = "json",
                 interactive: bool = False, *, title: str = "") -> Path:  # fmt: skip
        """Write every output into one bundle in the outbox (or ``path``), atomically, and
        start afresh. ``ext="xlsx"`` adds a workbook of the tables. Returns the bundle's path."""
        if interactive:
            raise AnalysisError("interactive finalise is not supported: use add_exception")
        content = self._bundle(ext, title)
        target = bundle.write(Path(path) if path is not None else self.outbox, content)
        self.outputs.clear()
        self.last_bundle = target
        if not self.quiet:
            self._echo(f"bundle written: {target} ({len(content.files)} files)")
        return target

    def submit(self, title: str = "", ext: str = "json", *, submit_now: bool = False) -> Submission:
        """Send the outputs for review: through the queue's API when a queue URL and token
        are configured (outside a sandbox), else as a bundle in the outbox. Either way the
        request is left pending for the researcher to complete and submit in the queue;
        ``submit_now=True`` (API only) also submits it. The outputs are kept if it fails."""
        if not (self.queue_url and self._queue_token):
            if submit_now:
                raise AnalysisError(
                    "submit_now needs the queue's API (ENCLAVE_QUEUE_URL and "
                    "ENCLAVE_QUEUE_TOKEN): submit the request in the queue"
                )
            return Submission("outbox", bundle=self.finalise(ext=ext, title=title))
        content = self._bundle(ext, title)
        created = create_request(self.queue_url, self._queue_token, self.project, content,
                                 submit_now=submit_now)  # fmt: skip
        self.outputs.clear()
        if not self.quiet:
            then = "" if submit_now else ": complete and submit it in the review queue"
            self._echo(f"release request {created.request_id} {created.status} "
                       f"({len(content.files)} files){then}")  # fmt: skip
        return Submission("api", request_id=created.request_id, status=created.status)

    def _bundle(self, ext: str, title: str) -> bundle.BundleContent:
        if ext not in ("json", "xlsx"):
            raise AnalysisError("ext must be 'json' or 'xlsx'")
        return bundle.build(list(self.outputs), title=title, project=self.project,
                            xlsx=ext == "xlsx")  # fmt: skip

    # ACRO's switches
    def enable_suppression(self) -> None:
        self.suppress = True

    def disable_suppression(self) -> None:
        self.suppress = False


def _ignored_style(kwargs: Mapping[str, Any], method: str) -> None:
    """pandas' styling arguments are accepted and ignored; anything else is refused."""
    style = {"grid", "xlabelsize", "xrot", "ylabelsize", "yrot", "ax", "axis", "sharex",
             "sharey", "figsize", "layout", "backend", "legend"}  # fmt: skip
    if kwargs.get("by_val") is not None:
        raise AnalysisError(f"{method}: by_val is not supported; use bar(..., by=...)")
    unknown = sorted(set(kwargs) - style - {"by_val"})
    if unknown:
        raise AnalysisError(f"{method}: unsupported argument(s) {', '.join(unknown)}")
