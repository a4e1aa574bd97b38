"""Kaplan-Meier step tables and their disclosure check (spec §7, §12.1, §12.3).

The checker estimates the curve itself from the data (evidence, not trust), then builds the
table the enclave would release: steps resting on fewer than T removed units (events plus
censored) are merged with the following steps, and each curve is right-truncated where fewer
than T units remain at risk (before merging, so no published time has fewer). Everything is
vectorised over steps; the only loops run over a logarithmic number of pointer-doubling
passes (see :func:`_block_starts`) and over groups when reporting.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from output_checker import api
from output_checker.errors import InputError
from output_checker.parameters import Parameters
from output_checker.results import envelope, json_scalar
from output_checker.status import Status

ACRO_SURVIVAL_THRESHOLD = 10  # ACRO 1.0.2 hard-codes this; `survival_safe_threshold` is never read

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, eq=False)
class SurvivalResult:
    """The verdict on one Kaplan-Meier output.

    ``raw_steps`` has one row per distinct time (per group): the estimate with a per-step
    verdict and the action taken (published, merged, truncated, withheld) and ``block``, the
    row of ``protected`` it went into (-1 if none). ``protected`` is the table the enclave
    would release: one row per published step, ``time`` the end of the merged interval,
    ``n_at_risk`` the units under observation at its start, ``n_events`` the events in it and
    ``survival`` the Kaplan-Meier estimate at its end. A ``group`` column leads both tables
    when the curves are grouped. No censored count is released: with it, the size of the
    truncated tail (fewer than T units) would follow from the last published row.
    """

    status: Status
    raw_steps: pd.DataFrame
    protected: pd.DataFrame
    parameters: Parameters
    threshold: int
    request: dict[str, str | None]
    groups: tuple[dict[str, Any], ...]
    notes: tuple[str, ...] = ()
    created: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())

    def output_sha256(self) -> str:
        """SHA-256 of the protected table as CSV, the form in which it would leave."""
        return hashlib.sha256(self.protected.to_csv(index=False).encode()).hexdigest()

    def summary(self) -> str:
        """One line a researcher can act on."""
        actions = self.raw_steps["action"].value_counts()
        parts = [
            f"{len(self.protected)} of {len(self.raw_steps)} steps published",
            f"{int(actions.get('merged', 0))} merged",
            f"{int(actions.get('truncated', 0))} truncated",
        ]
        withheld = int(actions.get("withheld", 0))
        if withheld:
            parts.append(f"{withheld} withheld")
        failing = [g for g in self.groups if g["status"] == Status.FAIL.label]
        if failing:
            parts.append(f"{len(failing)} group(s) cannot be published")
        return f"{self.status.label}: " + ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """The results manifest record (kind "survival")."""
        steps = _records(self.raw_steps, lists=("rules_failed",))
        protected = _records(self.protected)
        return {
            **envelope(
                "survival",
                "survival",
                self.status,
                self.summary(),
                self.notes,
                self.created,
                self.parameters,
            ),
            "request": dict(self.request),
            "threshold": self.threshold,
            "groups": [{k: json_scalar(v) for k, v in g.items()} for g in self.groups],
            "protected": protected,
            "steps": steps,
            "output": {"format": "csv", "sha256": self.output_sha256()},
        }


def _records(table: pd.DataFrame, lists: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts. Each column converts in one call, labels once per level;
    the ``lists`` columns hold comma-joined names and become lists."""
    columns: dict[str, list[Any]] = {}
    for name, col in table.items():  # a handful of columns
        if col.dtype == object:
            codes, levels = pd.factorize(col, use_na_sentinel=False)
            if name in lists:
                converted = [[x for x in str(v).split(",") if x] for v in levels]
            else:
                converted = [json_scalar(v) for v in levels]
            as_json = np.empty(len(converted), dtype=object)
            as_json[:] = converted
            picked = as_json[codes].tolist()
            # lists are copied so that no two records share a mutable object
            columns[str(name)] = [list(v) for v in picked] if name in lists else picked
        else:
            columns[str(name)] = col.tolist()
    return [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def check_survival(
    data: pd.DataFrame,
    duration: str,
    event: str,
    *,
    group: str | None = None,
    entity: str | None = None,
    conventions: str = "default",
    parameters: Parameters | None = None,
) -> SurvivalResult:
    """Estimate Kaplan-Meier curves of ``duration`` (``event`` 1 = event, 0 = censored), one
    per level of ``group``, and check them against spec §7.

    Canonical: each published step rests on at least T removed units since the previous one
    (shorter steps are merged with the following ones), each curve stops where fewer than T
    units remain at risk, and a group of fewer than T units fails. The output passes when
    every group can be published. ACRO mode merges until 10 units are removed, whatever the
    parameters, and is always "review".

    Returns a :class:`SurvivalResult`; ``.to_dict()`` is the manifest record.

    Raises:
        InputError: missing columns, empty data, missing values, non-numeric, negative or
            infinite durations, an event column other than 0/1, or an entity with several rows
            in one group.
        ParameterError: invalid parameters or conventions.
    """
    params = api.resolve_parameters(conventions, parameters)
    acro = params.conventions == "acro"
    threshold = ACRO_SURVIVAL_THRESHOLD if acro else params.threshold
    codes, labels, time, events = _prepare(data, duration, event, group, entity)
    steps = _km_steps(codes, time, events)
    # canonical: the curve stops where fewer than T units remain at risk, before any merging
    eligible = steps["n_at_risk"] >= (0 if acro else threshold)
    starts, published = _block_starts(steps["n_removed"], steps["group"], eligible, threshold)

    n_steps = steps["time"].shape[0]
    is_start = np.zeros(n_steps, dtype=bool)
    is_start[starts] = True
    block_of_step = np.cumsum(is_start) - 1
    block_size = np.diff(np.r_[starts, n_steps])
    ends = starts + block_size - 1
    pub_starts, pub_ends = starts[published], ends[published]
    step_pub = published[block_of_step]
    protected = pd.DataFrame(
        {
            "time": steps["time"][pub_ends],
            "n_at_risk": steps["n_at_risk"][pub_starts],
            "n_events": np.add.reduceat(steps["n_events"], starts)[published],
            "survival": steps["survival"][pub_ends],
        }
    )

    group_n = np.bincount(codes, minlength=len(labels))
    n_published = np.bincount(steps["group"][pub_ends], minlength=len(labels))
    step_group_n = group_n[steps["group"]]
    flags: list[tuple[str, BoolArray]] = [("removed", steps["n_removed"] < threshold)]
    if not acro:
        flags += [
            ("at_risk", steps["n_at_risk"] < threshold),
            ("group_size", step_group_n < threshold),
        ]
    failed = np.logical_or.reduce([mask for _, mask in flags])
    rules_failed = pd.Series("", index=range(n_steps))
    for name, mask in flags:  # a handful of rules, each vectorised over steps
        rules_failed = rules_failed + np.where(mask, name + ",", "")
    action = np.where(
        step_pub,
        np.where(block_size[block_of_step] == 1, "published", "merged"),
        np.where(n_published[steps["group"]] > 0, "truncated", "withheld"),
    )
    raw = pd.DataFrame(
        {
            "time": steps["time"],
            "n_at_risk": steps["n_at_risk"],
            "n_events": steps["n_events"],
            "n_censored": steps["n_removed"] - steps["n_events"],
            "n_removed": steps["n_removed"],
            "survival": steps["survival"],
            "status": np.where(failed, Status.FAIL.label, Status.PASS.label),
            "rules_failed": rules_failed.str.rstrip(",").to_numpy(),
            "action": action,
            "block": np.where(step_pub, (np.cumsum(published) - 1)[block_of_step], -1),
        }
    )
    if group is not None:
        raw.insert(0, "group", labels[steps["group"]])
        protected.insert(0, "group", labels[steps["group"][pub_ends]])

    groups, notes = _group_reports(
        labels, group_n, n_published, steps, pub_ends, grouped=group is not None,
        threshold=threshold, acro=acro,
    )  # fmt: skip
    merged = int((action == "merged").sum())
    if merged:
        into = int((published & (block_size > 1)).sum())
        notes.insert(
            0, f"{merged} steps merged into {into} so that each rests on {threshold}+ removals"
        )
    if acro:
        notes.append(
            f"ACRO mode: steps merged until at least {threshold} units are removed (fixed, "
            "parameters ignored), no truncation or group-size rule; survival outputs always "
            "need review"
        )
        status = Status.REVIEW
    else:
        status = Status.PASS if (n_published > 0).all() else Status.FAIL
    return SurvivalResult(
        status=status,
        raw_steps=raw,
        protected=protected,
        parameters=params,
        threshold=threshold,
        request={"duration": duration, "event": event, "group": group, "entity": entity},
        groups=tuple(groups),
        notes=tuple(notes),
    )


def _prepare(
    data: pd.DataFrame, duration: str, event: str, group: str | None, entity: str | None
) -> tuple[IntArray, npt.NDArray[Any], npt.NDArray[np.float64], IntArray]:
    """Validated group codes, group labels, durations and 0/1 events, one entry per unit."""
    if not isinstance(data, pd.DataFrame):
        raise InputError("survival data must be a pandas DataFrame")
    needed = [c for c in (duration, event, group, entity) if c is not None]
    missing = [c for c in dict.fromkeys(needed) if c not in data.columns]
    if missing:
        raise InputError(f"column(s) not in the data: {', '.join(map(repr, missing))}")
    if len(data) == 0:
        raise InputError("no rows: a survival curve needs data")
    for name in dict.fromkeys(needed):
        if data[name].isna().any():
            raise InputError(f"column {name!r} has missing values")
    dur = data[duration]
    if pd.api.types.is_bool_dtype(dur) or not pd.api.types.is_numeric_dtype(dur):
        raise InputError(f"duration column {duration!r} must be numeric")
    time = dur.to_numpy(dtype=np.float64)
    if not np.isfinite(time).all():
        raise InputError(f"duration column {duration!r} has infinite values")
    if (time < 0).any():
        raise InputError(f"duration column {duration!r} has negative values")
    ev = data[event]
    if pd.api.types.is_bool_dtype(ev):
        events = ev.to_numpy(dtype=np.int64)
    elif pd.api.types.is_numeric_dtype(ev) and ev.isin([0, 1]).all():
        events = ev.to_numpy(dtype=np.float64).astype(np.int64)
    else:
        raise InputError(f"event column {event!r} must hold 0/1 or booleans")
    if group is None:
        codes = np.zeros(len(data), dtype=np.int64)
        labels: npt.NDArray[Any] = np.array([None], dtype=object)
    else:
        try:
            group_codes, uniques = pd.factorize(data[group], sort=True)
        except TypeError:  # labels of mixed types do not sort
            group_codes, uniques = pd.factorize(data[group])
        codes = group_codes.astype(np.int64)
        labels = np.asarray(uniques, dtype=object)
    if entity is not None:
        pairs = pd.DataFrame({"g": codes, "e": data[entity].to_numpy()})
        if pairs.duplicated().any():
            raise InputError(
                f"entity column {entity!r} repeats within a group: Kaplan-Meier needs one row "
                "per unit"
            )
    return codes, labels, time, events


def _km_steps(codes: IntArray, time: npt.NDArray[np.float64], events: IntArray) -> dict[str, Any]:
    """The step table: one entry per distinct (group, time), sorted by group then time."""
    order = np.lexsort((time, codes))
    g, t, e = codes[order], time[order], events[order]
    n = t.shape[0]
    new = np.ones(n, dtype=bool)
    new[1:] = (g[1:] != g[:-1]) | (t[1:] != t[:-1])
    first = np.flatnonzero(new)
    step_group = g[first]
    group_end = np.searchsorted(g, step_group, side="right")
    n_at_risk = (group_end - first).astype(np.int64)
    n_removed = np.diff(np.r_[first, n]).astype(np.int64)
    n_events = np.add.reduceat(e, first).astype(np.int64)
    factor = pd.Series(1.0 - n_events / n_at_risk)
    survival = factor.groupby(step_group).cumprod().to_numpy(dtype=np.float64)
    return {
        "group": step_group,
        "time": t[first],
        "n_at_risk": n_at_risk,
        "n_events": n_events,
        "n_removed": n_removed,
        "survival": survival,
    }


def _block_starts(
    removed: IntArray, step_group: IntArray, eligible: BoolArray, threshold: int
) -> tuple[npt.NDArray[np.intp], BoolArray]:
    """Greedy merge: the first step of every block, and whether the block is complete (a
    complete block gathers ``threshold`` removals before truncation and is published).

    Steps are sorted by group then time, and ``eligible`` holds for a prefix of each group's
    steps (the steps before truncation). Within that prefix a block runs from its first step
    to the first step at which at least ``threshold`` units have been removed, and the next
    block starts after it. What remains (the prefix's tail that never gathers ``threshold``
    removals, then the truncated steps) forms incomplete blocks.

    The chain of block starts is a pointer chase (start -> next start), resolved by pointer
    doubling: every chain position is reached in log2(chain length) vectorised passes.
    """
    m = removed.shape[0]
    cum = np.cumsum(removed)
    end = np.searchsorted(cum, cum - removed + threshold, side="left")
    group_first = np.flatnonzero(np.r_[True, step_group[1:] != step_group[:-1]])
    group_last = np.r_[group_first[1:], m] - 1
    limit = group_first - 1 + np.add.reduceat(eligible.astype(np.int64), group_first)
    step_limit = np.repeat(limit, np.diff(np.r_[group_first, m]))
    complete = end <= step_limit
    sink = m
    nxt = np.append(np.where(complete & (end < step_limit), end + 1, sink), sink)

    hops = np.add.reduceat(removed, group_first) // threshold + 1  # bounds blocks per group
    offsets = np.cumsum(hops) - hops
    hop = np.arange(int(hops.sum())) - np.repeat(offsets, hops)
    pos = np.repeat(group_first, hops)
    jump = nxt
    bit = 0
    while (1 << bit) <= int(hop.max()):
        take = ((hop >> bit) & 1).astype(bool)
        pos = np.where(take, jump[pos], pos)
        jump = jump[jump]
        bit += 1
    tail = (limit + 1)[limit < group_last]  # first truncated step of each truncated group
    starts = np.unique(np.r_[pos[pos < sink], tail])
    is_complete = complete[starts] & (starts <= step_limit[starts])
    return starts, is_complete


def _group_reports(
    labels: npt.NDArray[Any],
    group_n: IntArray,
    n_published: IntArray,
    steps: dict[str, Any],
    pub_ends: npt.NDArray[np.intp],
    *,
    grouped: bool,
    threshold: int,
    acro: bool,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Per-group verdicts and the notes on unpublishable groups and truncated curves.

    Canonical: a group fails when none of its curve can be published (always so below T
    units). ACRO mode records every group as "review".
    """
    n_groups = len(labels)
    last_time = np.full(n_groups, np.nan)
    last_time[steps["group"][pub_ends]] = steps["time"][pub_ends]  # sorted: last write wins
    last_step = np.searchsorted(steps["group"], np.arange(n_groups), side="right") - 1
    truncated = last_time < steps["time"][last_step]
    groups: list[dict[str, Any]] = []
    notes: list[str] = []
    for k in range(n_groups):  # one entry per group; groups are few
        name = f"group {labels[k]!r}: " if grouped else ""
        status = Status.PASS if n_published[k] else Status.FAIL
        if not n_published[k]:
            why = (
                f"fewer than {threshold} units"
                if group_n[k] < threshold
                else f"the number at risk drops below {threshold} before {threshold} units "
                "are removed"
            )
            notes.append(f"{name}no step can be published: {why}")
        elif truncated[k]:
            why = (
                f"the last steps never gather {threshold} removals"
                if acro
                else f"the number at risk drops below {threshold} before another "
                f"{threshold} units are removed"
            )
            notes.append(f"{name}curve truncated after time {last_time[k]:g}: {why}")
        groups.append(
            {
                "group": labels[k],
                "n_units": int(group_n[k]),
                "status": (Status.REVIEW if acro else status).label,
                "published_steps": int(n_published[k]),
                "last_published_time": None if np.isnan(last_time[k]) else last_time[k],
            }
        )
    return groups, notes
