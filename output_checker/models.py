"""Disclosure checks for fitted statsmodels regressions (spec §2, §5, §12.1, §12.3).

Every number comes from the fitted model's own data (``model.exog``, ``model.endog``, its
weights and its formula design), never from figures the researcher supplies. Evidence that
cannot be read makes the check that needs it ``review``, never ``pass``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from statsmodels.base.model import Results

from output_checker import api
from output_checker.errors import InputError
from output_checker.model_evidence import Level, ModelEvidence, extract_evidence
from output_checker.parameters import Parameters
from output_checker.results import envelope, json_scalar
from output_checker.status import Status, worst

# Output name -> whether it is a unit-level quantity (blocked outright, spec §2 and §5).
OUTPUTS: dict[str, bool] = {
    "coefficients": False,
    "standard_errors": False,
    "confidence_intervals": False,
    "pvalues": False,
    "test_statistics": False,
    "covariance": False,
    "summary": False,
    "residuals": True,
    "fittedvalues": True,
    "predictions": True,
    "leverage": True,
    "influence": True,
}
OUTPUT_ALIASES: dict[str, str] = {
    "params": "coefficients",
    "bse": "standard_errors",
    "conf_int": "confidence_intervals",
    "resid": "residuals",
    "fitted_values": "fittedvalues",
    "fitted": "fittedvalues",
    "predicted": "predictions",
    "cooks_distance": "influence",
}

# Which checks run, per conventions: ACRO 1.0.2 only tests df_resid (spec §12.1, §12.3).
MODEL_CHECKS: dict[str, tuple[str, ...]] = {
    "default": ("dof", "sample_size", "level_count", "saturation", "lookup", "unit_level"),
    "acro": ("dof",),
}
LOOKUP_TOLERANCE = 1e-12


@dataclass(frozen=True)
class ModelCheck:
    """One check's verdict with the numbers behind it; ``reason`` is shown when it is not pass."""

    name: str
    status: Status
    numbers: dict[str, Any]
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status.label}
        for key, value in self.numbers.items():
            out[key] = value if isinstance(value, list | dict) else json_scalar(value)
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class ModelResult:
    """The verdict on one fitted model. ``to_dict()`` is the manifest record the CLI writes."""

    evidence: ModelEvidence
    parameters: Parameters
    outputs: tuple[str, ...]
    checks: dict[str, ModelCheck]
    notes: tuple[str, ...] = ()
    output_status: Status = Status.PASS  # floor, e.g. review for an unsupported model class
    created: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())

    @property
    def status(self) -> Status:
        return worst([self.output_status, *(c.status for c in self.checks.values())])

    def output_sha256(self) -> str:
        """SHA-256 of the coefficient table (params, bse, pvalues) as CSV."""
        return hashlib.sha256(self.evidence.coefficients_csv.encode()).hexdigest()

    def summary(self) -> str:
        """One line a researcher can act on."""
        flagged = [
            f"{c.name} ({c.reason})" for c in self.checks.values() if c.status != Status.PASS
        ]
        if not flagged and not self.notes:
            return f"{self.status.label}: all {len(self.checks)} model checks pass"
        return f"{self.status.label}: " + "; ".join([*flagged, *self.notes])

    def to_dict(self) -> dict[str, Any]:
        """The results manifest record (kind "model", output type "regression")."""
        ev = self.evidence
        return {
            **envelope(
                "model",
                "regression",
                self.status,
                self.summary(),
                self.notes,
                self.created,
                self.parameters,
            ),
            "request": {"outputs": list(self.outputs)},
            "model": {
                "class": ev.model_class,
                "family": ev.family,
                "link": ev.link,
                "nobs": json_scalar(ev.nobs),
                "k": ev.k,
                "df_resid": json_scalar(ev.df_resid),
                "rsquared": json_scalar(ev.rsquared),
                "residual_variance": json_scalar(ev.residual_variance),
                "response_square": json_scalar(ev.response_square),
                "supported": ev.supported,
                "levels": None if ev.levels is None else [lv.to_dict() for lv in ev.levels],
                "level_note": ev.level_note,
            },
            "checks": {name: check.to_dict() for name, check in self.checks.items()},
            "output": {"format": "csv", "sha256": self.output_sha256()},
        }


def check_model(
    result: Any,
    *,
    outputs: Sequence[str] = ("coefficients",),
    conventions: str = "default",
    parameters: Parameters | None = None,
) -> ModelResult:
    """Check a fitted statsmodels result (OLS, WLS, GLM, Logit, Probit, Poisson; array or
    formula API) before its ``outputs`` leave the enclave.

    Returns a :class:`ModelResult`; ``.to_dict()`` is the manifest record.

    Raises:
        InputError: ``result`` is not a fitted statsmodels result, or an output name is unknown.
        ParameterError: invalid parameters or conventions.
    """
    params = api.resolve_parameters(conventions, parameters)
    requested = normalise_outputs(outputs)
    if not isinstance(getattr(result, "_results", result), Results):
        raise InputError(f"expected a fitted statsmodels result; got {type(result).__name__}")
    evidence = extract_evidence(result)
    checks = {
        name: CHECKS[name](evidence, params, requested) for name in MODEL_CHECKS[params.conventions]
    }
    notes: list[str] = []
    floor = Status.PASS
    if not evidence.supported:
        notes.append(f"model class {evidence.model_class} is not supported: sent to review")
        floor = Status.REVIEW
    return ModelResult(evidence, params, requested, checks, tuple(notes), floor)


# What a model record must carry for the checks to be re-run on it (``recheck_record``).
RECORD_FIELDS = (
    "class", "family", "link", "supported", "nobs", "k", "df_resid", "rsquared",
    "residual_variance", "response_square", "levels", "level_note",
)  # fmt: skip


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def recheck_record(record: Mapping[str, Any], parameters: Parameters) -> ModelResult:
    """Re-run the model checks on the evidence a model record carries, with ``parameters``
    (the server's, never the record's). A record that lacks a field the checks read is sent
    to review as a whole. The coefficient table itself is the output file, which the caller
    binds to the record by its sha256; this function never needs it.

    Raises InputError for a record that is not a model record or whose fields are malformed.
    """
    model = record.get("model")
    if record.get("kind") != "model" or not isinstance(model, Mapping):
        raise InputError("not a model record")
    try:
        outputs = normalise_outputs(record["request"]["outputs"])
        missing = [name for name in RECORD_FIELDS if name not in model]
        levels = model.get("levels")
        evidence = ModelEvidence(
            model_class=str(model.get("class")),
            family=model.get("family"),
            link=model.get("link"),
            supported=model.get("supported") is True,
            nobs=_number(model.get("nobs")),
            k=None if model.get("k") is None else int(model["k"]),
            df_resid=_number(model.get("df_resid")),
            rsquared=_number(model.get("rsquared")),
            residual_variance=_number(model.get("residual_variance")),
            response_square=_number(model.get("response_square")),
            levels=None
            if levels is None
            else tuple(
                Level(str(lv["source"]), str(lv["column"]), str(lv["level"]), int(lv["n"]))
                for lv in levels
            ),
            level_note=model.get("level_note"),
            coefficients_csv="",
        )
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"malformed model record ({type(error).__name__})") from error
    checks = {
        name: CHECKS[name](evidence, parameters, outputs)
        for name in MODEL_CHECKS[parameters.conventions]
    }
    notes: list[str] = []
    floor = Status.PASS
    if missing:
        notes.append(f"the record lacks {', '.join(missing)}: sent to review")
        floor = Status.REVIEW
    elif not evidence.supported:
        notes.append(f"model class {evidence.model_class} is not supported: sent to review")
        floor = Status.REVIEW
    return ModelResult(evidence, parameters, outputs, checks, tuple(notes), floor)


def normalise_outputs(outputs: str | Sequence[str]) -> tuple[str, ...]:
    """Canonical output names; raises InputError naming an unknown one."""
    names = (outputs,) if isinstance(outputs, str) else tuple(outputs)
    if not names:
        raise InputError("no model outputs named: pass e.g. outputs=('coefficients',)")
    out = []
    for name in names:
        key = str(name).strip().lower().replace("-", "_").replace(" ", "_")
        key = OUTPUT_ALIASES.get(key, key)
        if key not in OUTPUTS:
            raise InputError(f"unknown model output {name!r}; known: {', '.join(OUTPUTS)}")
        out.append(key)
    return tuple(dict.fromkeys(out))


# ----- checks: evidence + parameters -> verdict -----------------------------------------------
def _at_least(name: str, label: str, value: float | None, threshold: int) -> ModelCheck:
    """Fail when ``value`` is below ``threshold``; review when it could not be read."""
    numbers = {label: value, "threshold": threshold}
    if value is None:
        return ModelCheck(name, Status.REVIEW, numbers, f"{label} could not be read")
    if value < threshold:
        return ModelCheck(name, Status.FAIL, numbers, f"{label} {value:g} < {threshold}")
    return ModelCheck(name, Status.PASS, numbers)


def _dof(ev: ModelEvidence, p: Parameters, _: tuple[str, ...]) -> ModelCheck:
    return _at_least("dof", "df_resid", ev.df_resid, p.dof_threshold)


def _sample_size(ev: ModelEvidence, p: Parameters, _: tuple[str, ...]) -> ModelCheck:
    return _at_least("sample_size", "nobs", ev.nobs, p.threshold)


def _level_count(ev: ModelEvidence, p: Parameters, _: tuple[str, ...]) -> ModelCheck:
    levels = ev.levels or ()
    # an unobserved level holds no units, so it reveals nobody (as 0 < N < T in §4)
    failing = [lv for lv in levels if 0 < lv.n < p.threshold]
    numbers: dict[str, Any] = {
        "threshold": p.threshold,
        "levels_checked": len(levels),
        "failing": [lv.to_dict() for lv in failing],
    }
    if failing:
        named = ", ".join(f"{lv.column}={lv.level} ({lv.n})" for lv in failing[:5])
        return ModelCheck(
            "level_count", Status.FAIL, numbers, f"levels under {p.threshold}: {named}"
        )
    if ev.levels is None or ev.level_note:
        return ModelCheck("level_count", Status.REVIEW, numbers, ev.level_note or "not evaluated")
    return ModelCheck("level_count", Status.PASS, numbers)


def _saturation(ev: ModelEvidence, p: Parameters, _: tuple[str, ...]) -> ModelCheck:
    numbers: dict[str, Any] = {"k": ev.k, "nobs": ev.nobs, "max_saturation": p.max_saturation}
    if p.max_saturation is None:
        return ModelCheck("saturation", Status.PASS, numbers | {"off": True})
    if ev.nobs is None or ev.k is None:
        return ModelCheck("saturation", Status.REVIEW, numbers, "N or k could not be read")
    limit = p.max_saturation * ev.nobs
    numbers["limit"] = limit
    failed = ev.k > limit
    reason = f"k {ev.k} > {p.max_saturation:g}*N = {limit:g}" if failed else ""
    return ModelCheck("saturation", Status.FAIL if failed else Status.PASS, numbers, reason)


def _lookup(ev: ModelEvidence, p: Parameters, _: tuple[str, ...]) -> ModelCheck:
    numbers = {
        "rsquared": ev.rsquared,
        "residual_variance": ev.residual_variance,
        "tolerance": LOOKUP_TOLERANCE,
    }
    perfect_r2 = ev.rsquared is not None and abs(1.0 - ev.rsquared) <= LOOKUP_TOLERANCE
    zero_resid = (
        ev.residual_variance is not None
        and ev.response_square is not None
        and ev.residual_variance <= LOOKUP_TOLERANCE**2 * max(ev.response_square, 1e-300)
    )
    if perfect_r2 or zero_resid:
        reason = "R² = 1" if perfect_r2 else "zero residual variance"
        return ModelCheck(
            "lookup", Status.FAIL, numbers, f"{reason}: the model reproduces the data"
        )
    if ev.rsquared is None and ev.residual_variance is None:
        return ModelCheck(
            "lookup", Status.REVIEW, numbers, "neither R² nor residuals could be read"
        )
    return ModelCheck("lookup", Status.PASS, numbers)


def _unit_level(_: ModelEvidence, p: Parameters, outputs: tuple[str, ...]) -> ModelCheck:
    blocked = [name for name in outputs if OUTPUTS[name]]
    numbers: dict[str, Any] = {"requested": list(outputs), "unit_level": blocked}
    if blocked:
        return ModelCheck(
            "unit_level", Status.FAIL, numbers, f"unit-level output: {', '.join(blocked)}"
        )
    return ModelCheck("unit_level", Status.PASS, numbers)


CHECKS: dict[str, Callable[[ModelEvidence, Parameters, tuple[str, ...]], ModelCheck]] = {
    "dof": _dof,
    "sample_size": _sample_size,
    "level_count": _level_count,
    "saturation": _saturation,
    "lookup": _lookup,
    "unit_level": _unit_level,
}


# ----- evidence ----------------------------------------------------------------------------------
