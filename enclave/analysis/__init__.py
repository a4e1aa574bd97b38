"""The researcher's analysis library: ACRO's calls, each checked by the enclave's checker.

    import enclave.analysis as ea
    ea.init(project="cydl", outbox="/outbox", datasets="/data", entity="person_id")
    df = ea.load("cohort-outcomes")
    ea.crosstab(df.group, df.year, margins=True)   # protected table, summary printed
    ea.ols("benefit_months ~ C(group) + C(sex)", data=df)
    ea.finalise(title="Cohort outcomes")           # a bundle in the outbox

Every module-level function acts on one default session: the one :func:`init` made, or one
configured from ``ENCLAVE_*`` environment variables on first use (see
:meth:`Session.from_environment`). ``Session`` objects can also be used directly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from enclave.analysis.errors import AnalysisError
from enclave.analysis.outputs import Output
from enclave.analysis.plots import CheckedPlot
from enclave.analysis.session import Session, Submission

_default: Session | None = None


def init(*args: Any, **kwargs: Any) -> Session:
    """Replace the default session with ``Session(*args, **kwargs)`` and return it."""
    global _default
    _default = Session(*args, **kwargs)
    return _default


def session() -> Session:
    """The default session (configured from the environment on first use)."""
    global _default
    if _default is None:
        _default = Session.from_environment()
    return _default


def ACRO(config: str = "default", suppress: bool = True, **kwargs: Any) -> Session:
    """For notebooks written for ACRO: ``acro = ACRO(suppress=True)`` gives a session.
    ``config`` must be ``"default"`` (parameters are the project's, not a YAML file)."""
    if config != "default":
        raise AnalysisError("config: checker parameters come from the project, not a file")
    base = Session.from_environment()
    settings: dict[str, Any] = {
        "project": base.project,
        "outbox": base.outbox,
        "datasets": os.environ.get("ENCLAVE_DATASETS") or None,
        "entity": base.entity,
        "queue_url": base.queue_url,
        "queue_token": os.environ.get("ENCLAVE_QUEUE_TOKEN") or None,
    }
    return Session(**{**settings, **kwargs, "suppress": suppress})


def add_constant(data: Any, prepend: bool = True, has_constant: str = "skip") -> Any:
    """statsmodels' ``add_constant`` (ACRO re-exports it too)."""
    import statsmodels.api as sm

    return sm.add_constant(data, prepend=prepend, has_constant=has_constant)


def load(name: str, **kwargs: Any) -> pd.DataFrame:
    return session().load(name, **kwargs)


def where(frame: pd.DataFrame, column: str, op: str, value: Any = None) -> pd.DataFrame:
    return session().where(frame, column, op, value)


def list_datasets() -> list[str]:
    return session().list_datasets()


def crosstab(*args: Any, **kwargs: Any) -> pd.DataFrame:
    return session().crosstab(*args, **kwargs)


def pivot_table(*args: Any, **kwargs: Any) -> pd.DataFrame:
    return session().pivot_table(*args, **kwargs)


def groupby_agg(*args: Any, **kwargs: Any) -> pd.DataFrame:
    return session().groupby_agg(*args, **kwargs)


def describe(*args: Any, **kwargs: Any) -> pd.DataFrame:
    return session().describe(*args, **kwargs)


def ols(*args: Any, **kwargs: Any) -> Any:
    return session().ols(*args, **kwargs)


def olsr(*args: Any, **kwargs: Any) -> Any:
    return session().olsr(*args, **kwargs)


def logit(*args: Any, **kwargs: Any) -> Any:
    return session().logit(*args, **kwargs)


def logitr(*args: Any, **kwargs: Any) -> Any:
    return session().logitr(*args, **kwargs)


def probit(*args: Any, **kwargs: Any) -> Any:
    return session().probit(*args, **kwargs)


def probitr(*args: Any, **kwargs: Any) -> Any:
    return session().probitr(*args, **kwargs)


def glm(*args: Any, **kwargs: Any) -> Any:
    return session().glm(*args, **kwargs)


def glmr(*args: Any, **kwargs: Any) -> Any:
    return session().glmr(*args, **kwargs)


def surv_func(*args: Any, **kwargs: Any) -> Any:
    return session().surv_func(*args, **kwargs)


def hist(*args: Any, **kwargs: Any) -> CheckedPlot:
    return session().hist(*args, **kwargs)


def bar(*args: Any, **kwargs: Any) -> CheckedPlot:
    return session().bar(*args, **kwargs)


def custom_output(filename: str | Path, comment: str = "") -> bool:
    return session().custom_output(filename, comment)


def rename_output(old: str, new: str) -> None:
    session().rename_output(old, new)


def remove_output(key: str) -> None:
    session().remove_output(key)


def add_comments(output: str, comment: str) -> None:
    session().add_comments(output, comment)


def add_exception(output: str, reason: str) -> None:
    session().add_exception(output, reason)


def print_outputs() -> str:
    return session().print_outputs()


def finalise(*args: Any, **kwargs: Any) -> Path:
    return session().finalise(*args, **kwargs)


def submit(*args: Any, **kwargs: Any) -> Submission:
    return session().submit(*args, **kwargs)


# each module-level function carries its Session method's documentation
for _name in (
    "load", "where", "list_datasets", "crosstab", "pivot_table", "groupby_agg", "describe",
    "ols", "olsr", "logit", "logitr", "probit", "probitr", "glm", "glmr", "surv_func", "hist",
    "bar", "custom_output", "rename_output", "remove_output", "add_comments", "add_exception",
    "print_outputs", "finalise", "submit",
):  # fmt: skip
    globals()[_name].__doc__ = getattr(Session, _name).__doc__

__all__ = [
    "ACRO",
    "AnalysisError",
    "CheckedPlot",
    "Output",
    "Session",
    "Submission",
    "add_comments",
    "add_constant",
    "add_exception",
    "bar",
    "crosstab",
    "custom_output",
    "describe",
    "finalise",
    "glm",
    "glmr",
    "groupby_agg",
    "hist",
    "init",
    "list_datasets",
    "load",
    "logit",
    "logitr",
    "ols",
    "olsr",
    "pivot_table",
    "print_outputs",
    "probit",
    "probitr",
    "remove_output",
    "rename_output",
    "session",
    "submit",
    "surv_func",
    "where",
]
