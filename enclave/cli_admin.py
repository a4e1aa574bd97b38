"""``enclave admin ...`` and ``enclave audit ...``: the operator's provisioning tool on the host.

Argument parsing and wiring only: every command calls one service function with the acting
person given by ``--as EMAIL`` (recorded in the audit log). Settings come from ``ENCLAVE_``
variables and the TOML file named by ``--config`` or ``ENCLAVE_CONFIG``. ``enclave.cli``
turns ControlError and SettingsError into one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from enclave import cli_admin_commands as c
from enclave.control import audit, db
from enclave.control.context import open_context
from enclave.control.errors import ControlError
from enclave.control.hub import sync_hub
from enclave.settings import Settings

# Commands after which project membership as the hub sees it may have changed.
HUB_AFFECTING = {
    "activate-project",
    "suspend-project",
    "close-project",
    "add-member",
    "remove-member",
    "suspend-person",
    "reinstate-person",
}


def _audit_verify(settings: Settings, a: argparse.Namespace) -> int:
    engine = db.make_engine(settings.database_url)
    try:
        db.require_current(engine)
        report = audit.verify(engine, anchor=a.anchor)
    finally:
        engine.dispose()
    if report.ok:
        print(report.summary())
        return 0
    print(f"enclave: {report.summary()}", file=sys.stderr)
    return 1


def _audit_export(settings: Settings, a: argparse.Namespace) -> int:
    engine = db.make_engine(settings.database_url)
    try:
        db.require_current(engine)
        if a.out is None:
            report = audit.export(engine, sys.stdout, after_seq=a.after)
        else:
            with a.out.open("w", encoding="utf-8") as handle:
                report = audit.export(engine, handle, after_seq=a.after)
    finally:
        engine.dispose()
    print(report.summary(), file=sys.stderr)
    return 0 if report.ok else 1


Arg = tuple[tuple[str, ...], dict[str, Any]]


def _a(*flags: str, **options: Any) -> Arg:
    return flags, options


AS = _a("--as", dest="actor", required=True, metavar="EMAIL", help="the admin acting")
REASON = _a("--reason", required=True)
JSON = _a("--json", action="store_true", help="one JSON object per line")
PERSON = (
    _a("--email", required=True),
    _a("--name", required=True),
    _a("--organisation", required=True),
    _a("--username", help="hub login name (default: from the email)"),
)

# name -> (help, arguments, handler). The acting person is always --as.
COMMANDS: dict[str, tuple[str, tuple[Arg, ...], c.Handler]] = {
    "bootstrap": ("create the first admin of an empty database", PERSON, c.bootstrap),
    "create-person": (
        "create an account",
        (AS, *PERSON, _a("--role", action="append", help="repeatable")),
        c.create_person,
    ),
    "set-roles": (
        "replace a person's roles",
        (AS, _a("email"), _a("--role", action="append")),
        c.set_roles,
    ),
    "suspend-person": (
        "suspend an account at once",
        (AS, _a("email"), REASON),
        c.set_active(False),
    ),
    "reinstate-person": ("reinstate an account", (AS, _a("email"), REASON), c.set_active(True)),
    "accredit": (
        "record an accreditation or training certificate",
        (
            AS,
            _a("email"),
            _a("--scheme", required=True),
            _a("--reference", required=True),
            _a("--issued", required=True, metavar="YYYY-MM-DD"),
            _a("--expires", required=True, metavar="YYYY-MM-DD"),
        ),
        c.accredit,
    ),
    "set-password": ("set a password read from stdin", (AS, _a("email")), c.set_password),
    "enrol-totp": ("give a person a new TOTP secret", (AS, _a("email")), c.enrol_totp),
    "create-project": (
        "propose a project",
        (
            AS,
            _a("--slug", required=True),
            _a("--title", required=True),
            _a("--lay-summary", required=True),
            _a("--public-benefit", required=True),
            _a("--organisation", required=True),
            _a("--purpose", required=True),
            _a("--start", required=True, metavar="YYYY-MM-DD"),
            _a("--end", required=True, metavar="YYYY-MM-DD"),
            _a("--legal-basis", default=""),
            _a("--ethics-ref", default=""),
            _a("--dsa-ref", default=""),
            _a("--disclosure", help="JSON object of checker overrides (tighten only)"),
        ),
        c.create_project,
    ),
    "approve-project": ("approve a proposed project", (AS, _a("slug")), c.transition("approve")),
    "reject-project": ("reject a proposal", (AS, _a("slug"), REASON), c.transition("reject")),
    "activate-project": ("open a project for sessions", (AS, _a("slug")), c.transition("activate")),
    "suspend-project": ("suspend at once", (AS, _a("slug"), REASON), c.transition("suspend")),
    "close-project": (
        "close: revoke grants, archive, destroy keys",
        (AS, _a("slug"), REASON),
        c.transition("close"),
    ),
    "set-disclosure": (
        "set a project's checker overrides (JSON, tighten only)",
        (AS, _a("slug"), _a("overrides")),
        c.set_disclosure,
    ),
    "add-member": (
        "add a person to a project",
        (
            AS,
            _a("--project", required=True),
            _a("--email", required=True),
            _a("--role", required=True),
            _a("--expires", required=True, metavar="YYYY-MM-DD"),
        ),
        c.add_member,
    ),
    "remove-member": (
        "end a membership",
        (
            AS,
            _a("--project", required=True),
            _a("--email", required=True),
            _a("--role", required=True),
            REASON,
        ),
        c.remove_member,
    ),
    "register-dataset": (
        "register a dataset with its variables (CSV or JSON file)",
        (
            AS,
            _a("--slug", required=True),
            _a("--name", required=True),
            _a("--agency", required=True),
            _a("--description", required=True),
            _a("--version", help="sha256 content hash"),
            _a("--version-of", type=Path, metavar="FILE", help="hash this file's content"),
            _a("--custodian", required=True, metavar="EMAIL"),
            _a("--purpose", action="append", required=True, help="repeatable"),
            _a("--variables", type=Path, required=True, metavar="FILE"),
        ),
        c.register_dataset,
    ),
    "request-grant": (
        "request variables of a dataset for a project",
        (
            AS,
            _a("--project", required=True),
            _a("--dataset", required=True),
            _a("--variable", action="append", required=True, help="repeatable or a,b,c"),
            _a("--expires", required=True, metavar="YYYY-MM-DD"),
        ),
        c.request_grant,
    ),
    "approve-grant": ("approve a requested grant", (AS, _a("grant")), c.decide("approve")),
    "reject-grant": ("reject a requested grant", (AS, _a("grant"), REASON), c.decide("reject")),
    "revoke-grant": ("revoke a grant at once", (AS, _a("grant"), REASON), c.decide("revoke")),
    "issue-token": (
        "print a new bearer token",
        (
            AS,
            _a("--for", dest="email", metavar="EMAIL", help="default: the actor"),
            _a("--label", required=True),
            _a("--days", type=int),
        ),
        c.issue_token,
    ),
    "list-people": ("list accounts", (AS, JSON), c.list_people),
    "list-projects": ("list projects", (AS, JSON, _a("--state")), c.list_projects),
    "list-datasets": ("list datasets", (AS, JSON), c.list_datasets),
    "list-grants": (
        "list grants",
        (AS, JSON, _a("--project"), _a("--dataset")),
        c.list_grants,
    ),
    "sync-hub": ("mirror memberships to JupyterHub groups now", (AS,), c.sync_hub_now),
}


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.load(config_file=args.config)


def _run_admin(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.admin_command == "init":
        return c.init(settings, args)
    ctx = open_context(settings)
    try:
        status = COMMANDS[args.admin_command][2](ctx, settings, args)
        if args.admin_command in HUB_AFFECTING and settings.hub_url:
            try:
                sync_hub(ctx, settings, actor=args.actor)
            except ControlError as error:  # the change stands; the mirror catches up later
                print(f"enclave: warning: hub not updated: {error}", file=sys.stderr)
        return status
    finally:
        ctx.close()


def _run_audit(args: argparse.Namespace) -> int:
    settings = _settings(args)
    return (
        _audit_verify(settings, args)
        if args.audit_command == "verify"
        else _audit_export(settings, args)
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``admin`` and ``audit`` command groups to the ``enclave`` parser."""
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("--config", type=Path, help="TOML settings file (or $ENCLAVE_CONFIG)")
    admin = sub.add_parser("admin", help="provision people, projects, datasets and grants")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    admin_sub.add_parser("init", help="create or upgrade the database", parents=[config])
    for name, (text, arguments, _handler) in COMMANDS.items():
        command = admin_sub.add_parser(name, help=text, parents=[config])
        for flags, options in arguments:
            command.add_argument(*flags, **options)
    admin.set_defaults(run=_run_admin)
    log = sub.add_parser("audit", help="verify or export the audit log")
    log_sub = log.add_subparsers(dest="audit_command", required=True)
    verify = log_sub.add_parser("verify", help="check the hash chain", parents=[config])
    verify.add_argument("--anchor", help="a head hash recorded earlier that must be in the chain")
    export = log_sub.add_parser("export", help="write JSON lines", parents=[config])
    export.add_argument("--out", type=Path, help="file to write (default: stdout)")
    export.add_argument("--after", type=int, default=0, metavar="SEQ")
    log.set_defaults(run=_run_audit)
