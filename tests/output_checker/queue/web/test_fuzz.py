"""Schemathesis fuzzes every operation of the JSON API from its OpenAPI document, in-process
(WSGI): no 5xx, and every response matches the documented schema and media type.

Path ids are random UUIDs half the time and the real ids of a request under review (and its
file, and a comment) the other half, and tokens are the author's or an eligible checker's,
so generated bodies reach the services and their rules rather than stopping at "not found".
Examples are derandomised (the same every run) and capped to keep the run under ~60 s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

from enclave.control.context import Context
from output_checker.queue import service
from output_checker.queue.workflow import Status
from tests.output_checker.queue.factories import QueueWorld, make_request

EXAMPLES = 20
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


def test_fuzz_the_api(
    app: Flask, ctx: Context, qw: QueueWorld, bearer: Callable[[str], dict[str, str]]
) -> None:
    rid = make_request(ctx, qw, Status.SUBMITTED)
    real = {
        "request_id": rid,
        "file_id": service.get_request(ctx, qw.author, rid).files[0].id,
        "comment_id": service.comment(
            ctx, qw.checker_a, rid, body="note", group="tables", visibility="private"
        ).id,
    }
    tokens = [bearer(qw.author), bearer(qw.checker_a)]
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 20
    failures: list[str] = []
    for operation in operations:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(), use_real=st.booleans(), who=st.sampled_from(tokens))
        def fuzz(case: Any, use_real: bool, who: dict[str, str]) -> None:
            if use_real and case.path_parameters:
                case.path_parameters = {k: real.get(k, v) for k, v in case.path_parameters.items()}
            response = case.call(headers=who)
            case.validate_response(response, checks=CHECKS, headers=who)

        try:
            fuzz()
        except Exception as error:  # gather every operation's failure, then report them all
            failures.append(f"{operation.method.upper()} {operation.path}: {error}")
    assert not failures, "\n\n".join(failures)
