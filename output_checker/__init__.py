"""Output checker: statistical disclosure control for every output leaving the enclave.

The public surface is small: :func:`check_table` and the result and error types. Everything
else in the package is an implementation detail.
"""

from output_checker.api import check_table
from output_checker.errors import CheckerError, InputError, ParameterError
from output_checker.parameters import NKRule, Parameters
from output_checker.results import TableResult
from output_checker.status import Status

__all__ = [
    "CheckerError",
    "InputError",
    "NKRule",
    "ParameterError",
    "Parameters",
    "Status",
    "TableResult",
    "check_table",
]
__version__ = "0.1.0"
