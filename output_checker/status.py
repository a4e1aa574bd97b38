"""Statuses of checks and outputs, ordered so that the worst one wins."""

from enum import IntEnum

import numpy as np
import numpy.typing as npt


class Status(IntEnum):
    """Verdict of one check, one cell or one output. Larger is worse."""

    PASS = 0
    REVIEW = 1
    FAIL = 2

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def from_label(cls, label: str) -> "Status":
        return cls[label.upper()]


StatusArray = npt.NDArray[np.int8]


def worst(statuses: "list[Status] | tuple[Status, ...]") -> Status:
    """The worst of several statuses; PASS for none."""
    return max(statuses, default=Status.PASS)
