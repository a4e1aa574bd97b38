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
from enclave import cli_admin_data as d
from enclave import cli_admin_egress as e
from enclave import cli_admin_packages as p
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
    "bar-person",
    "lift-sanction",
    "decide-appeal",
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
    # breach handling (service/incidents.py): a sanction in every project at once
    "suspend-person": (
        "suspend a person in every project: tokens revoked, sessions stopped",
        (AS, _a("email"), REASON),
        c.sanction("suspend"),
    ),
    "bar-person": (
        "bar a person for good (only an overturned appeal lifts it)",
        (AS, _a("email"), REASON),
        c.sanction("bar"),
    ),
    "lift-sanction": ("lift a suspension", (AS, _a("sanction"), REASON), c.lift_sanction),
    "appeal": (
        "record an appeal against a sanction",
        (AS, _a("sanction"), _a("--statement", required=True)),
        c.appeal,
    ),
    "decide-appeal": (
        "decide an appeal (not by the admin who imposed the sanction)",
        (
            AS,
            _a("sanction"),
            _a("--outcome", required=True, choices=["upheld", "overturned"]),
            REASON,
        ),
        c.decide_appeal,
    ),
    "sanctions": (
        "list sanctions in force (--all: every one)",
        (AS, JSON, _a("--email"), _a("--all", action="store_true")),
        c.list_sanctions,
    ),
    "freeze": (
        "incident freeze: stop every session and hold releases (of one project, or all)",
        (AS, _a("--project", metavar="SLUG", help="default: the whole enclave"), REASON),
        c.freeze,
    ),
    "unfreeze": ("end a freeze", (AS, _a("freeze"), REASON), c.unfreeze),
    "freezes": (
        "list freezes in force (--all: every one)",
        (AS, JSON, _a("--all", action="store_true")),
        c.list_freezes,
    ),
    # security-log alerts (service/alerts.py)
    "scan-alerts": (
        "raise alerts from the audit log since the last scan",
        (_a("--as", dest="actor", metavar="EMAIL", help="the admin asking (default: system)"),),
        c.scan_alerts,
    ),
    "alerts": (
        "list open alerts (--all: reviewed ones too)",
        (AS, JSON, _a("--all", action="store_true")),
        c.list_alerts,
    ),
    "review-alert": (
        "close an alert as benign or an incident",
        (
            AS,
            _a("alert"),
            _a("--outcome", required=True, choices=["benign", "incident"]),
            _a("--note", required=True),
        ),
        c.review_alert,
    ),
    "reinstate-person": (
        "reactivate an account deactivated on the web (a sanction: lift-sanction)",
        (AS, _a("email"), REASON),
        c.set_active(True),
    ),
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
            _a("--ethics-expires", metavar="YYYY-MM-DD", help="default: the end date"),
            _a("--dsa-expires", metavar="YYYY-MM-DD", help="default: the end date"),
            _a("--pi", metavar="EMAIL", help="the principal investigator (a researcher)"),
        ),
        c.create_project,
    ),
    # changes of PI or custodian: flagged for review until an admin reviews their alert
    "set-pi": (
        "name a project's principal investigator (a researcher); flagged for review",
        (AS, _a("slug"), _a("email"), REASON),
        c.set_pi,
    ),
    "transfer-custody": (
        "hand a dataset to a new custodian (data_custodian role); flagged for review",
        (AS, _a("dataset"), _a("email"), REASON),
        c.transfer_custody,
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
    "set-limits": (
        "set a project's session quota (overrides the tier's memory, CPU and process caps)",
        (
            AS,
            _a("project"),
            _a("--memory", metavar="SIZE", help="memory per session, e.g. 8G or 512M"),
            _a("--cpus", type=float, help="CPU cores per session, e.g. 2 or 0.5"),
            _a("--pids", type=int, help="processes and threads per session"),
            _a("--clear", action="store_true", help="remove the quota: back to the tier's caps"),
        ),
        c.set_limits,
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
            _a("--hours", type=int, help="instead of --days; at most 12 for privileged people"),
            _a("--totp", metavar="CODE", help="your authenticator code (privileged tokens)"),
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
    # governed close: deletion certificates (service/certificates.py)
    "deletion-certificate": (
        "print a closed project's signed deletion certificate (--verify: check it)",
        (
            AS,
            _a("slug"),
            JSON,
            _a("--verify", action="store_true", help="check signature and audit chain; exit 1"),
            _a("--public-key", type=Path, metavar="PEM", help="verify with this exported key"),
        ),
        d.deletion_certificate,
    ),
    "certificate-public-key": (
        "print the certificate signing public key (PEM)",
        (AS,),
        d.certificate_public_key,
    ),
    # data ingress with the custodian's approval (service/ingress.py)
    "submit-dataset-version": (
        "submit a CSV or Parquet file as a new version of a dataset (validated, scanned)",
        (AS, _a("dataset"), _a("file", type=Path), _a("--label", help="default: sha256 prefix")),
        d.submit_dataset_version,
    ),
    "dataset-versions": (
        "list a dataset's versions",
        (AS, _a("dataset"), JSON),
        d.dataset_versions,
    ),
    "decide-dataset-version": (
        "approve or reject a submitted version (the dataset's custodian)",
        (
            AS,
            _a("version", metavar="UUID"),
            _a("--approve", action="store_true"),
            _a("--reject", action="store_true"),
            REASON,
        ),
        d.decide_dataset_version,
    ),
    # a dataset's microdata risk target for its extracts (service/microdata_policy.py)
    "microdata-policy": (
        "a dataset's k-anonymity and global-risk target for research extracts",
        (
            AS,
            _a("dataset"),
            _a("--k", type=int, required=True, help="every person k-anonymous (at least 2)"),
            _a("--max-global-risk", type=float, default=1e-4, help="for sample data"),
        ),
        e.microdata_policy,
    ),
    # custodian egress rights (service/egress.py, SATRE 3.1.06)
    "egress-policy": (
        "whether releasing a dataset's outputs needs its custodian's sign-off",
        (
            AS,
            _a("dataset"),
            _a("--signoff", action=argparse.BooleanOptionalAction, required=True),
        ),
        e.egress_policy,
    ),
    "delegate": (
        "name (--remove: end) a custodian's delegate for a dataset's egress decisions",
        (AS, _a("dataset"), _a("email"), _a("--remove", action="store_true")),
        e.delegate,
    ),
    "egress-right": (
        "grant (--revoke: revoke) a researcher's egress right for a dataset in a project",
        (AS, _a("dataset"), _a("project"), _a("email"), _a("--revoke", action="store_true")),
        e.egress_right,
    ),
    # compliance that expires, organisation assurance, user agreement (service/compliance.py)
    "record-compliance": (
        "record or renew a project's DSA, ethics approval, funding or DPIA",
        (
            AS,
            _a("project"),
            _a("--kind", required=True, choices=["dsa", "ethics", "funding", "dpia"]),
            _a("--reference", required=True),
            _a("--valid-from", required=True, metavar="YYYY-MM-DD"),
            _a("--expires-on", required=True, metavar="YYYY-MM-DD"),
        ),
        c.record_compliance,
    ),
    "record-training": (
        "record or renew a person's training in a course",
        (
            AS,
            _a("email"),
            _a("--course", required=True),
            _a("--version", dest="course_version", required=True),
            _a("--completed-on", required=True, metavar="YYYY-MM-DD"),
            _a("--expires-on", required=True, metavar="YYYY-MM-DD"),
        ),
        c.record_training,
    ),
    "organisation": (
        "record, renew or (--withdraw) withdraw an organisation's assurance",
        (
            AS,
            _a("name"),
            _a("--scheme"),
            _a("--reference"),
            _a("--assured-until", metavar="YYYY-MM-DD"),
            _a("--withdraw", action="store_true"),
            _a("--reason", help="why it is withdrawn"),
        ),
        c.organisation,
    ),
    "compliance-report": (
        "items expiring within N days or lapsed",
        (AS, JSON, _a("--within-days", type=int, metavar="N", help="default: the policy's")),
        c.compliance_report,
    ),
    "accept-agreement": (
        "accept the current user agreement (for oneself)",
        (
            _a("--as", dest="actor", required=True, metavar="EMAIL", help="the person accepting"),
            _a("--version", dest="agreement_version", help="the version read (must be current)"),
        ),
        c.accept_agreement,
    ),
    # software ingress (service/packages.py, SATRE 2.1.12-13)
    "request-package": (
        "ask for a package in the sessions' wheelhouse (a researcher of the project)",
        (
            _a("--as", dest="actor", required=True, metavar="EMAIL", help="the researcher"),
            _a("project"),
            _a("name"),
            _a("--why", required=True, help="what the package is needed for"),
            _a("--version", help="a version specifier, e.g. '>=1.2,<2'"),
        ),
        p.request_package,
    ),
    "package-requests": (
        "list package requests",
        (AS, JSON, _a("--state", choices=("requested", "approved", "rejected"))),
        p.package_requests,
    ),
    "approve-package": (
        "approve a request with the wheel file(s) fetched on the host (copied in, hashed)",
        (
            AS,
            _a("request", metavar="UUID"),
            _a("--wheel", required=True, action="append", type=Path, metavar="PATH"),
        ),
        p.approve_package,
    ),
    "reject-package": (
        "reject a package request",
        (AS, _a("request", metavar="UUID"), REASON),
        p.reject_package,
    ),
    # usage data (service/usage.py)
    "usage": (
        "sessions, hours, storage and datasets per project and per person",
        (
            AS,
            JSON,
            _a("--from", dest="start", metavar="YYYY-MM-DD", help="default: this month's first"),
            _a("--to", dest="end", metavar="YYYY-MM-DD", help="default: today"),
            _a("--csv", action="store_true", help="per project and person, for charging"),
        ),
        c.usage_report,
    ),
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
