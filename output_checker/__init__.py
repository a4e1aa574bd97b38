"""Output checker: statistical disclosure control for every output leaving the enclave.

The public surface is small: one ``check_*`` function per kind of output, the parameters, and
the result and error types. Everything else in the package is an implementation detail.
"""

from typing import TYPE_CHECKING, Any

from output_checker.api import check_table
from output_checker.errors import CheckerError, InputError, ParameterError
from output_checker.parameters import NKRule, Parameters
from output_checker.results import TableResult
from output_checker.status import Status

if TYPE_CHECKING:
    from output_checker.files import FileResult, check_file
    from output_checker.histogram import HistogramResult, check_histogram
    from output_checker.models import ModelResult, check_model
    from output_checker.survival import SurvivalResult, check_survival

# Loaded on first use, so that checking a table never pays for importing statsmodels.
_LAZY = {
    "FileResult": "files",
    "check_file": "files",
    "HistogramResult": "histogram",
    "check_histogram": "histogram",
    "ModelResult": "models",
    "check_model": "models",
    "SurvivalResult": "survival",
    "check_survival": "survival",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"output_checker.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'output_checker' has no attribute {name!r}")


__all__ = [
    "CheckerError",
    "FileResult",
    "HistogramResult",
    "InputError",
    "ModelResult",
    "NKRule",
    "ParameterError",
    "Parameters",
    "Status",
    "SurvivalResult",
    "TableResult",
    "check_file",
    "check_histogram",
    "check_model",
    "check_survival",
    "check_table",
]
__version__ = "0.1.0"
