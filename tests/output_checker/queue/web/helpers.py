"""Helpers of the queue's web tests: requests with failing outputs (which need an exception
request before they can be submitted), file ids by name, and extra file types."""

from __future__ import annotations

import hashlib
from typing import Any

from enclave.control.context import Context
from output_checker.queue import service
from tests.output_checker.queue.factories import (
    Output,
    QueueWorld,
    distinct,
    failing_beside_passing,
    make_request,
    passing_output,
)
from tests.output_checker.queue.factories import add_output as add_factory_output

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
)


def with_failing(ctx: Context, qw: QueueWorld, *, submit: bool = True) -> str:
    """A request with a passing and a failing table (its exception asked for), submitted
    unless ``submit`` is false; returns its id."""
    rid = make_request(ctx, qw, outputs=(passing_output(qw), failing_beside_passing(qw)))
    for file in service.get_request(ctx, qw.author, rid).files:
        if file.automated_status == "fail":
            service.set_exception(ctx, qw.author, rid, file.id, "the 90+ band is needed")
    if submit:
        service.submit(ctx, qw.author, rid)
    return rid


def file_id(ctx: Context, qw: QueueWorld, rid: str, name: str) -> str:
    """The id of the file ``name`` of request ``rid``."""
    (found,) = [f.id for f in service.get_request(ctx, qw.author, rid).files if f.name == name]
    return found


def add_plain(
    ctx: Context, qw: QueueWorld, rid: str, name: str, data: bytes, kind: str = "supporting"
) -> str:
    """Add a file without a checker record (supporting by default); returns its id."""
    view = service.add_file(ctx, qw.author, rid, name=name, data=data, kind=kind, group="tables")
    return view.id


def add_output(ctx: Context, qw: QueueWorld, rid: str, output: Output) -> str:
    """Add a table output (made unique, as released bytes may not come back)."""
    return add_factory_output(ctx, qw, rid, distinct(output))


def record_for(data: bytes, record: dict[str, Any]) -> dict[str, Any]:
    """``record`` bound to ``data`` (its output sha256)."""
    return {**record, "output": {**record["output"], "sha256": hashlib.sha256(data).hexdigest()}}
