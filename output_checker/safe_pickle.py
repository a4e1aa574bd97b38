"""Load a researcher's statsmodels model file (``result.save(path)``) without running its code.

A pickle can call any function it can name, so ``pickle.load`` on a researcher's file is code
execution. The unpickler here resolves only an explicit allow-list:

* classes (never functions, never dotted names such as ``OLS.from_formula``) *defined in* a
  short list of statsmodels modules that hold the supported models, results and GLM families;
* the few numpy, pandas and builtins reconstructors that genuine model files use.

Everything else is refused with :class:`InputError`. Two kinds of allowed class run code taken
from the file when unpickled, so the loader substitutes a stand-in for each:

* statsmodels' ``ModelData.__setstate__`` rebuilds a formula model's design by *evaluating the
  formula* (patsy/formulaic ``eval``). The stand-in restores the attributes without rebuilding
  it, so a loaded formula model has no ``model_spec`` (the checker then reads categorical terms
  from the column names).
* scipy's ``rv_generic.__setstate__`` ``exec``s a code template stored in the pickled state.
  The two distributions GLM links pickle (``norm`` for probit, ``cauchy``) are rebuilt from
  scipy's own instances and their pickled state is ignored.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import scipy.stats
from statsmodels.base.data import ModelData
from statsmodels.base.model import Results

from output_checker.errors import InputError
from output_checker.models import ModelResult, check_model
from output_checker.parameters import Parameters

# Modules whose own classes a model file may instantiate.
STATSMODELS_MODULES: frozenset[str] = frozenset(
    {
        "statsmodels.base.data",
        "statsmodels.base.model",
        "statsmodels.base.wrapper",
        "statsmodels.base.elastic_net",
        "statsmodels.regression.linear_model",
        "statsmodels.discrete.discrete_model",
        "statsmodels.discrete.count_model",
        "statsmodels.genmod.generalized_linear_model",
        "statsmodels.genmod.families.family",
        "statsmodels.genmod.families.links",
        "statsmodels.genmod.families.varfuncs",
        "statsmodels.tools.tools",
    }
)

# Exact (module, name) pairs that genuine model files use for arrays, frames and indexes.
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),
        # scipy distributions carry numpy's legacy RandomState; these only call what the
        # file names, which is itself allow-listed
        ("numpy.random._pickle", "__randomstate_ctor"),
        ("numpy.random._pickle", "__bit_generator_ctor"),
        ("numpy.random._mt19937", "MT19937"),
        ("numpy.random.bit_generator", "SeedSequence"),
        ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
        ("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked"),
        ("pandas._libs.internals", "_unpickle_block"),
        ("pandas._libs.tslibs.timestamps", "_unpickle_timestamp"),
        ("pandas._libs.tslibs.timedeltas", "_timedelta_unpickle"),
        ("pandas.core.arrays.categorical", "Categorical"),
        ("pandas.core.arrays.datetimes", "DatetimeArray"),
        ("pandas.core.arrays.timedeltas", "TimedeltaArray"),
        ("pandas.core.dtypes.dtypes", "CategoricalDtype"),
        ("pandas.core.dtypes.dtypes", "DatetimeTZDtype"),
        ("pandas.core.frame", "DataFrame"),
        ("pandas.core.series", "Series"),
        ("pandas.core.indexes.base", "Index"),
        ("pandas.core.indexes.base", "_new_Index"),
        ("pandas.core.indexes.range", "RangeIndex"),
        ("pandas.core.indexes.multi", "MultiIndex"),
        ("pandas.core.indexes.datetimes", "DatetimeIndex"),
        ("pandas.core.indexes.datetimes", "_new_DatetimeIndex"),
        ("pandas.core.internals.managers", "BlockManager"),
        ("pandas.core.internals.managers", "SingleBlockManager"),
        ("builtins", "slice"),
        ("builtins", "complex"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("collections", "OrderedDict"),
        ("datetime", "datetime"),
        ("datetime", "date"),
        ("datetime", "timedelta"),
        ("datetime", "timezone"),
    }
)

# scipy distributions a GLM link may hold -> the scipy.stats instance they are rebuilt from.
SCIPY_DISTRIBUTIONS: dict[tuple[str, str], str] = {
    ("scipy.stats._continuous_distns", "norm_gen"): "norm",
    ("scipy.stats._continuous_distns", "cauchy_gen"): "cauchy",
}

# Old module paths of the same objects (numpy 1.x files, statsmodels < 0.14).
MODULE_ALIASES: dict[str, str] = {
    "numpy.core.multiarray": "numpy._core.multiarray",
    "numpy.core.numeric": "numpy._core.numeric",
    "statsmodels.tools.decorators": "statsmodels.tools._decorators",
}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can only name allow-listed classes and reconstructors."""

    def find_class(self, module: str, name: str) -> Any:
        module = MODULE_ALIASES.get(module, module)
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        if (module, name) in SCIPY_DISTRIBUTIONS:
            found = super().find_class(module, name)
            return _fresh_distribution_class(found, SCIPY_DISTRIBUTIONS[module, name])
        if module in STATSMODELS_MODULES and name.isidentifier():
            found = super().find_class(module, name)
            # a class defined there, not a function or something the module imported
            if isinstance(found, type) and found.__module__ == module:
                return _inert_data_class(found) if issubclass(found, ModelData) else found
        raise InputError(f"model file refers to {module}.{name}, which is not allowed")

    def persistent_load(self, pid: Any) -> Any:
        raise InputError("model file uses persistent references, which are not allowed")


@cache
def _inert_data_class(original: type) -> type:
    """A stand-in for a statsmodels data class whose unpickling never evaluates the formula.

    After restoring the attributes it turns the object back into ``original``.
    """

    def __setstate__(self: Any, state: Any) -> None:
        if not isinstance(state, dict):
            raise InputError("model file holds a malformed model data object")
        state = {key: value for key, value in state.items() if key != "restore_model_spec"}
        self.__dict__.update(state)
        self.__class__ = original

    return type(original.__name__, (original,), {"__setstate__": __setstate__})


@cache
def _fresh_distribution_class(original: type, instance_name: str) -> type:
    """A stand-in for a scipy distribution class that ignores the pickled state (whose code
    template scipy would ``exec``) and copies scipy's own ``scipy.stats.<instance_name>``."""

    def __setstate__(self: Any, state: Any) -> None:
        self.__dict__.update(getattr(scipy.stats, instance_name).__dict__)
        self.__class__ = original
        self._attach_methods()  # re-binds the argument parsers from scipy's own template

    return type(original.__name__, (original,), {"__setstate__": __setstate__})


def load_model(path: str | Path) -> Any:
    """Load a fitted statsmodels result written by ``result.save(path)``.

    Returns the result (usually a results wrapper).

    Raises:
        InputError: the file is missing or unreadable, names anything outside the allow-list,
            or does not hold a fitted statsmodels result.
    """
    source = Path(path)
    try:
        payload = source.read_bytes()
    except OSError as error:
        raise InputError(f"model file {source.name!r} cannot be read ({error.strerror})") from None
    try:
        loaded = _RestrictedUnpickler(io.BytesIO(payload)).load()
    except InputError:
        raise
    except Exception as error:  # truncated, corrupt or hostile: never half-load a model
        raise InputError(
            f"model file {source.name!r} is not a readable model pickle ({type(error).__name__})"
        ) from None
    if not isinstance(getattr(loaded, "_results", loaded), Results):
        raise InputError(
            f"model file {source.name!r} does not hold a fitted statsmodels result "
            f"(found {type(loaded).__name__})"
        )
    return loaded


def check_model_file(
    path: str | Path,
    *,
    outputs: Sequence[str] = ("coefficients",),
    conventions: str = "default",
    parameters: Parameters | None = None,
) -> ModelResult:
    """Load a saved model with :func:`load_model` and check it with ``check_model``.

    Raises:
        InputError: see :func:`load_model` and ``check_model``.
        ParameterError: invalid parameters or conventions.
    """
    result = load_model(path)
    return check_model(result, outputs=outputs, conventions=conventions, parameters=parameters)
