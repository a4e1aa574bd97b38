"""The checker demonstration (`enclave demo`): generated microdata, typical outputs, checked."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from enclave.synth.microdata import generate
from output_checker import Status, check_table
from output_checker.manifest import write_json


def run_demo(rows: int, out_dir: Path, seed: int = 0) -> Iterator[str]:
    """Generate ``rows`` records, check typical outputs, write their manifests to ``out_dir``.

    Yields the lines to show the user.
    """
    started = time.perf_counter()
    data = generate(rows, seed=seed)
    yield f"generated {len(data):,} synthetic records in {time.perf_counter() - started:.1f} s"
    cohort = data.iloc[:3000]  # a small cohort, where unsafe cells are common
    requests = {
        "count_a_by_b_cohort": dict(index="cat_a", columns="cat_b", margins=True),
        "mean_income_a_by_bc": dict(
            index="cat_a",
            columns=["cat_b", "cat_c"],
            values="income",
            aggfunc="mean",
            entity="entity_id",
        ),
        "median_income_by_a": dict(index="cat_a", values="income", aggfunc="median"),
        "max_income_by_a": dict(index="cat_a", values="income", aggfunc="max"),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, request in requests.items():
        started = time.perf_counter()
        source = cohort if name.endswith("_cohort") else data
        result = check_table(source, **request)  # type: ignore[arg-type]
        elapsed = time.perf_counter() - started
        path = out_dir / f"{name}.json"
        write_json(path, result.to_dict())
        yield f"{name:<22} {elapsed * 1000:7.0f} ms  {result.summary()}"
        yield f"{'':<22} manifest: {path}"
    first = check_table(cohort, **requests["count_a_by_b_cohort"])  # type: ignore[arg-type]
    yield ""
    yield "cohort count table; * marks cells that fail, ? cells sent to review:"
    frame = first.to_frame().astype(str)
    status = first.cell_status.reshape(frame.shape)
    frame = frame.where(status != Status.FAIL, frame + "*")
    frame = frame.where(status != Status.REVIEW, frame + "?")
    yield frame.to_string()
