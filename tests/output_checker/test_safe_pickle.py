"""The restricted model-file loader: genuine statsmodels files load and check; hostile pickles
are refused before they can run anything (each attack is attempted, and its side effect, a
marker file, must not appear)."""

from __future__ import annotations

import builtins
import copy
import os
import pickle
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import statsmodels.api as sm
import statsmodels.formula.api as smf

from output_checker.errors import InputError
from output_checker.models import check_model
from output_checker.safe_pickle import check_model_file, load_model
from output_checker.status import Status


class _Gadget:
    """Pickles as "call ``func(*args)``": the classic ``__reduce__`` code-execution gadget."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.func, self.args


def _global_call(module: str, name: str, *args: Any) -> bytes:
    """A protocol-4 pickle that looks up ``module``/``name`` (dotted names allowed) and calls
    it with ``args``, built opcode by opcode as an attacker would."""

    def text(value: str) -> bytes:
        raw = value.encode()
        return b"\x8c" + bytes([len(raw)]) + raw  # SHORT_BINUNICODE

    arguments = pickle.dumps(args, protocol=2, fix_imports=False)[2:-1]  # without PROTO and STOP
    return b"\x80\x04" + text(module) + text(name) + b"\x93" + arguments + b"R."


def _frame(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n)})
    frame["y"] = frame["x"] - 0.5 * frame["z"] + rng.normal(size=n)
    frame["event"] = (frame["x"] + rng.normal(size=n) > 0).astype(int)
    frame["count"] = rng.poisson(2.0, size=n)
    frame["g"] = ["a"] * 4 + ["b", "c"] * ((n - 4) // 2)
    return frame


def _write(path: Path, payload: bytes) -> Path:
    path.write_bytes(payload)
    return path


# ----- attacks --------------------------------------------------------------------------------
def test_os_system_gadget_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = _write(tmp_path / "m.pickle", pickle.dumps(_Gadget(os.system, f"touch {marker}")))
    with pytest.raises(InputError, match=r"refers to (posix|os)\.system, which is not allowed"):
        load_model(path)
    assert not marker.exists()


@pytest.mark.parametrize("func", [builtins.eval, builtins.exec])
def test_eval_and_exec_are_refused(tmp_path: Path, func: Any) -> None:
    marker = tmp_path / "pwned"
    code = f"open({str(marker)!r}, 'w').close()"
    path = _write(tmp_path / "m.pickle", pickle.dumps(_Gadget(func, code)))
    with pytest.raises(InputError, match=rf"refers to builtins\.{func.__name__}"):
        load_model(path)
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # the same file, unrestricted, does run its code
    assert marker.exists()


def test_subprocess_popen_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = _write(
        tmp_path / "m.pickle", pickle.dumps(_Gadget(subprocess.Popen, ["touch", str(marker)]))
    )
    with pytest.raises(InputError, match=r"refers to subprocess\.Popen"):
        check_model_file(path)
    assert not marker.exists()


def test_gadget_hidden_inside_a_genuine_model_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    fit = sm.OLS(_frame()["y"], sm.add_constant(_frame()[["x"]])).fit()
    fit._results.note = _Gadget(builtins.exec, f"open({str(marker)!r}, 'w').close()")
    path = tmp_path / "model.pickle"
    fit.save(path)
    with pytest.raises(InputError, match=r"builtins\.exec"):
        load_model(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("builtins", "getattr"),
        ("builtins", "__import__"),
        ("pandas", "read_pickle"),  # an unrestricted unpickler
        ("pandas.io.pickle", "read_pickle"),
        ("numpy", "load"),
        ("numpy.lib.npyio", "load"),
        ("numpy", "memmap"),  # a class that creates files
        ("statsmodels.iolib.smpickle", "load_pickle"),
        ("statsmodels.regression.linear_model", "yule_walker"),  # a function, not a class
        ("statsmodels.regression.linear_model", "OLS.from_formula"),  # evaluates a formula
        ("statsmodels.regression.linear_model", "np"),  # a module the allowed module imported
        ("patsy", "dmatrix"),
        ("os", "system"),
    ],
)
def test_names_outside_the_allow_list_are_refused(tmp_path: Path, module: str, name: str) -> None:
    marker = tmp_path / "pwned"
    formula = f"y ~ __import__('os').system('touch {marker}')"
    data = pd.DataFrame({"y": [1.0, 2.0]})
    path = _write(tmp_path / "m.pickle", _global_call(module, name, formula, data))
    with pytest.raises(InputError, match=rf"refers to {module}\.{name}, which is not allowed"):
        load_model(path)
    assert not marker.exists()


def test_dotted_name_payload_is_live_without_the_allow_list(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    formula = f"y ~ __import__('os').system('touch {marker}')"
    data = pd.DataFrame({"y": [1.0, 2.0]})
    payload = _global_call("statsmodels.regression.linear_model", "OLS.from_formula", formula, data)
    with pytest.raises(Exception):  # noqa: B017 - statsmodels fails after the code has run
        pickle.loads(payload)
    assert marker.exists()


def test_formula_evaluated_on_unpickling_is_neutralised(tmp_path: Path) -> None:
    # statsmodels' ModelData.__setstate__ rebuilds a formula design by evaluating the formula,
    # so an allowed class with a crafted formula string runs code on a plain pickle.load
    marker = tmp_path / "pwned"
    fit = smf.ols("y ~ x + C(g)", _frame()).fit()
    fit.model.data.formula = f"y ~ x + __import__('pathlib').Path({str(marker)!r}).touch()"
    path = tmp_path / "model.pickle"
    fit.save(path)

    loaded = load_model(path)
    assert not marker.exists()
    assert type(loaded.model.data).__name__ == "PandasData"
    assert type(loaded.model.data).__module__ == "statsmodels.base.data"
    assert not hasattr(loaded.model.data, "model_spec")
    assert check_model(loaded).checks["level_count"].status == Status.FAIL  # "a" has 4 units

    with pytest.raises(Exception):  # noqa: B017 - patsy fails after the code has run
        pickle.loads(path.read_bytes())
    assert marker.exists()


def test_scipy_distribution_code_template_is_neutralised(tmp_path: Path) -> None:
    # scipy's rv_generic.__setstate__ execs a code template kept in the pickled state; a GLM
    # probit link pickles scipy.stats.norm, so its state is a code-execution channel
    marker = tmp_path / "pwned"
    frame = _frame()
    family = sm.families.Binomial(link=sm.families.links.Probit())
    fit = smf.glm("event ~ x", frame, family=family).fit()
    evil = copy.copy(scipy.stats.norm)
    evil._parse_arg_template = f"open({str(marker)!r}, 'w').close()\n" + evil._parse_arg_template
    fit.model.family.link.dbn = evil
    path = tmp_path / "model.pickle"
    fit.save(path)

    loaded = load_model(path)
    assert not marker.exists()
    dbn = loaded.model.family.link.dbn
    assert type(dbn) is type(scipy.stats.norm) and dbn.cdf(0.0) == 0.5
    assert check_model(loaded).status == Status.PASS

    pickle.loads(path.read_bytes())  # the same file, unrestricted, runs the template
    assert marker.exists()


def test_persistent_references_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.pickle", b"\x80\x02Pfile:/etc/passwd\n.")
    with pytest.raises(InputError, match="persistent references"):
        load_model(path)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (pickle.dumps({"params": [1.0, 2.0]}), "does not hold a fitted statsmodels result"),
        (pickle.dumps(np.arange(3.0)), "does not hold a fitted statsmodels result"),
        (b"not a pickle at all", "not a readable model pickle"),
    ],
)
def test_files_that_are_not_models(tmp_path: Path, payload: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message):
        load_model(_write(tmp_path / "m.pickle", payload))


def test_truncated_model_file(tmp_path: Path) -> None:
    path = tmp_path / "model.pickle"
    sm.OLS(_frame()["y"], sm.add_constant(_frame()[["x"]])).fit().save(path)
    truncated = _write(tmp_path / "cut.pickle", path.read_bytes()[:-40])
    with pytest.raises(InputError, match="not a readable model pickle"):
        load_model(truncated)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot be read"):
        load_model(tmp_path / "absent.pickle")


# ----- genuine files --------------------------------------------------------------------------
def _fits() -> dict[str, Any]:
    frame = _frame()
    exog = sm.add_constant(frame[["x", "z"]])
    return {
        "ols-array": sm.OLS(frame["y"].to_numpy(), exog.to_numpy()).fit(),
        "ols-formula": smf.ols("y ~ x + z", frame).fit(),
        "wls": sm.WLS(frame["y"], exog, weights=1.0 + frame["x"] ** 2).fit(),
        "logit-formula": smf.logit("event ~ x + C(g)", frame).fit(disp=0),
        "probit": sm.Probit(frame["event"], exog).fit(disp=0),
        "glm-poisson": smf.glm("count ~ x", frame, family=sm.families.Poisson()).fit(),
        "glm-binomial": sm.GLM(frame["event"], exog, family=sm.families.Binomial()).fit(),
        "glm-probit": sm.GLM(
            frame["event"], exog, family=sm.families.Binomial(sm.families.links.Probit())
        ).fit(),
        "glm-cauchy": sm.GLM(
            frame["event"], exog, family=sm.families.Binomial(sm.families.links.Cauchy())
        ).fit(),
        "ols-robust": sm.OLS(frame["y"], exog).fit(cov_type="HC1"),
    }


@pytest.mark.parametrize("name", sorted(_fits()))
def test_genuine_model_files_round_trip(tmp_path: Path, name: str) -> None:
    fit = _fits()[name]
    path = tmp_path / f"{name}.pickle"
    fit.save(path)
    loaded = load_model(path)
    np.testing.assert_array_equal(np.asarray(loaded.params), np.asarray(fit.params))
    live, from_file = check_model(fit).to_dict(), check_model_file(path).to_dict()
    assert from_file["status"] == live["status"]
    assert from_file["output"] == live["output"]
    for key in ("class", "family", "nobs", "k", "df_resid", "rsquared"):
        assert from_file["model"][key] == live["model"][key], key
    # a loaded formula model keeps no design, so only the reference level's label may differ
    counts = sorted((lv["source"], lv["column"], lv["n"]) for lv in live["model"]["levels"])
    assert (
        sorted((lv["source"], lv["column"], lv["n"]) for lv in from_file["model"]["levels"])
        == counts
    )
    assert {k: v["status"] for k, v in from_file["checks"].items()} == {
        k: v["status"] for k, v in live["checks"].items()
    }


def test_logit_file_with_rare_reference_level_fails(tmp_path: Path) -> None:
    path = tmp_path / "logit.pickle"
    smf.logit("event ~ x + C(g)", _frame()).fit(disp=0).save(path)
    result = check_model_file(path)
    assert result.status == Status.FAIL
    assert result.checks["level_count"].numbers["failing"] == [
        {"source": "categorical", "column": "C(g)", "level": "reference", "n": 4}
    ]
    assert check_model_file(path, conventions="acro").status == Status.PASS
    assert check_model_file(path, outputs=["residuals"]).checks["unit_level"].status == Status.FAIL


def test_formula_frame_with_categorical_and_dates_loads(tmp_path: Path) -> None:
    frame = _frame()
    frame["kind"] = pd.Categorical(np.where(frame["z"] > 0, "p", "q"))
    frame["day"] = pd.date_range("2024-01-01", periods=len(frame), tz="UTC")
    path = tmp_path / "model.pickle"
    smf.ols("y ~ x + kind", frame).fit().save(path)
    loaded = load_model(path)
    assert list(loaded.model.exog_names) == ["Intercept", "kind[T.q]", "x"]
    assert check_model_file(path).status == Status.PASS


def test_model_file_saved_without_data_goes_to_review(tmp_path: Path) -> None:
    path = tmp_path / "model.pickle"
    sm.OLS(_frame()["y"], sm.add_constant(_frame()[["x"]])).fit().save(path, remove_data=True)
    result = check_model_file(path)
    assert result.status == Status.REVIEW
    assert result.checks["dof"].status == Status.PASS
