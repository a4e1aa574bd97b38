"""The checker's exception hierarchy: every message is fit to show a user on one line."""


class CheckerError(Exception):
    """Base class. ``str(error)`` is a one-line, user-facing explanation."""


class InputError(CheckerError):
    """The data or the request cannot be checked as given (missing column, bad aggregation...)."""


class ParameterError(CheckerError):
    """A rule parameter is invalid, or a project tried to loosen a default."""
