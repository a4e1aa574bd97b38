"""The data lab's errors: each ``str()`` is one line for the operator and never carries
person-level values (only counts, column names and parameters)."""

from __future__ import annotations


class DataLabError(Exception):
    """Any refusal of the impact-evaluation core."""


class TooFewMatched(DataLabError):
    """Fewer matched treated people than the minimum the service analyses (spec 8.2)."""

    def __init__(
        self, count: int, cohort: int, minimum: int, what: str = "matched treated people"
    ) -> None:
        self.count, self.cohort, self.minimum = count, cohort, minimum
        super().__init__(
            f"refused: {count} {what} (of {cohort} in the cohort) is fewer than {minimum}, "
            "the minimum the data lab analyses"
        )
