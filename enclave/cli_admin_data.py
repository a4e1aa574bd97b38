"""Handlers of ``enclave admin ...`` for deletion certificates and data ingress: each calls
one service function and prints its result. Wiring lives in ``enclave.cli_admin``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from enclave.control.context import Context
from enclave.control.errors import InvalidInput
from enclave.control.service import certificates, ingress
from enclave.settings import Settings


def _out(*columns: object) -> None:
    print("\t".join("" if c is None else str(c) for c in columns))


def _public_key_file(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(f"cannot read the public key {path}: {error}") from None


def deletion_certificate(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    """Print a closed project's certificate; with ``--verify`` exit 1 unless it verifies."""
    check = None
    if a.verify:
        pem = _public_key_file(a.public_key)
        check = certificates.verify_certificate(ctx, a.actor, a.slug, public_pem=pem)
        view = check.certificate
    else:
        view = certificates.get_certificate(ctx, a.actor, a.slug)
    if a.json:
        shown: dict[str, object] = {
            "uuid": view.uuid,
            "project": view.project,
            "issued_at": view.issued_at.isoformat(),
            "issued_by": view.issued_by,
            "key_id": view.key_id,
            "body": view.body,  # the exact signed text, so it can be checked elsewhere
            "signature": view.signature,
        }
        if check is not None:
            shown["verified"] = check.ok
            shown["problems"] = list(check.problems)
        print(json.dumps(shown, sort_keys=True))
    else:
        _out("certificate", view.uuid, view.project, view.issued_at.isoformat(), view.issued_by)
        _out("key_id", view.key_id)
        _out("signature", view.signature)
        print(json.dumps(view.fields, indent=2, sort_keys=True))
        if check is not None:
            _out("verified", "yes" if check.ok else "NO")
    if check is not None and not check.ok:
        for problem in check.problems:
            print(f"enclave: certificate of {view.project}: {problem}", file=sys.stderr)
        return 1
    return 0


def certificate_public_key(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    print(certificates.public_key(ctx, a.actor), end="")
    return 0


def submit_dataset_version(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    view = ingress.submit_version(ctx, a.actor, a.dataset, a.file, label=a.label)
    _out("version", view.uuid, view.dataset, view.version, view.state)
    for problem in view.report.get("problems", []):
        _out("problem", problem)
    for column, kinds in sorted(view.report.get("identifier_like", {}).items()):
        flagged = ",".join(f"{kind}:{n}" for kind, n in sorted(kinds.items()))
        _out("flag identifier-like values", column, flagged)
    for column in view.report.get("identifier_names", []):
        _out("flag identifier-like name", column)
    for column, counts in sorted(view.report.get("rare_categories", {}).items()):
        _out("flag rare categories", column, f"{counts['rare']} of {counts['categories']}")
    return 0 if view.state == ingress.VersionState.SUBMITTED else 1


def dataset_versions(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    header = ("uuid", "version", "state", "rows", "sha256", "submitted_by", "decided_by", "reason")
    rows = [
        (
            v.uuid,
            v.version,
            v.state,
            v.report.get("rows"),
            v.sha256,
            v.submitted_by,
            v.decided_by,
            v.reason,
        )
        for v in ingress.list_versions(ctx, a.actor, a.dataset)
    ]
    if a.json:
        for row in rows:
            print(json.dumps(dict(zip(header, row, strict=True)), default=str))
        return 0
    _out(*header)
    for row in rows:
        _out(*row)
    return 0


def decide_dataset_version(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    if a.approve == a.reject:
        raise InvalidInput("give exactly one of --approve and --reject")
    view = ingress.decide_version(ctx, a.actor, a.version, approve=a.approve, reason=a.reason)
    _out("version", view.uuid, view.dataset, view.version, view.state)
    return 0
