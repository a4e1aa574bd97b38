"""``enclave admin egress-policy | delegate | egress-right`` end to end through ``main(argv)``:
the custodian sets the policy, names a delegate who grants and revokes a right; refusals
are one line on stderr, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from enclave.control import audit
from enclave.control.context import open_context
from enclave.settings import Settings
from tests.enclave.test_cli_admin import (  # noqa: F401 - env is a fixture
    ADMIN,
    CUSTODIAN,
    RESEARCHER,
    env,
    ok,
    provision,
    refused,
)

CHECKER = "che@example.org"


def test_custodian_egress_commands(
    env: Path,  # noqa: F811 - the fixture
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    grant = provision(capsys, tmp_path)
    ok(capsys, f"admin approve-grant --as {CUSTODIAN} {grant}")
    ok(
        capsys,
        f"admin create-person --as {ADMIN} --email {CHECKER} --name C --organisation O "
        "--role output_checker",
    )
    refused(capsys, "role", f"admin delegate --as {ADMIN} hes {CHECKER}")
    assert ok(capsys, f"admin egress-policy --as {CUSTODIAN} hes --signoff") == (
        f"hes\tsignoff\t{CUSTODIAN}\n"
    )
    assert ok(capsys, f"admin delegate --as {CUSTODIAN} hes {CHECKER}") == (
        f"hes\t{CHECKER}\tdelegate\n"
    )
    refused(capsys, "role", f"admin egress-right --as {RESEARCHER} hes beds {RESEARCHER}")
    assert ok(capsys, f"admin egress-right --as {CHECKER} hes beds {RESEARCHER}") == (
        f"hes\tbeds\t{RESEARCHER}\tgranted\n"
    )
    assert ok(capsys, f"admin egress-right --as {CUSTODIAN} hes beds {RESEARCHER} --revoke") == (
        f"hes\tbeds\t{RESEARCHER}\trevoked\n"
    )
    assert ok(capsys, f"admin delegate --as {CUSTODIAN} hes {CHECKER} --remove") == (
        f"hes\t{CHECKER}\tremoved\n"
    )
    refused(
        capsys,
        "custodian_or_delegate",
        f"admin egress-right --as {CHECKER} hes beds {RESEARCHER}",
    )
    assert ok(capsys, f"admin egress-policy --as {ADMIN} hes --no-signoff").startswith(
        "hes\tno-signoff\t"
    )
    ctx = open_context(Settings.load())
    try:
        actions = [e.action for e in audit.records(ctx.engine) if e.outcome == "ok"]
    finally:
        ctx.close()
    assert actions[-6:] == [
        "set_egress_policy",
        "add_delegate",
        "grant_egress_right",
        "revoke_egress_right",
        "remove_delegate",
        "set_egress_policy",
    ]
