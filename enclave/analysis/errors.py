"""The one exception of the analysis library: a request it refuses, said in one line."""

from __future__ import annotations


class AnalysisError(ValueError):
    """A call the library refuses (bad input, an aggregation it cannot check, unregistered
    data where a recipe is required, a bundle it cannot write). ``str(error)`` is one line
    meant for the researcher; nothing is recorded when it is raised."""
