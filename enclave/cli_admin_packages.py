"""Handlers of ``enclave admin ...`` for software ingress (package requests and the
wheelhouse): each calls one service function and prints its result. Wiring lives in
``enclave.cli_admin``."""

from __future__ import annotations

import argparse
import json

from enclave.control.context import Context
from enclave.control.service import packages
from enclave.settings import Settings

HEADER = ("uuid", "project", "name", "version_spec", "state", "requested_by", "decided_by")


def _out(*columns: object) -> None:
    print("\t".join("" if c is None else str(c) for c in columns))


def request_package(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    view = packages.request_package(
        ctx, a.actor, a.project, a.name, why=a.why, version=a.version or ""
    )
    _out("package-request", view.uuid, view.project, view.name, view.state)
    return 0


def package_requests(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    views = packages.list_packages(ctx, a.actor, state=a.state)
    if a.json:
        for view in views:
            row = dict(zip(HEADER, _row(view), strict=True))
            print(json.dumps({**row, "why": view.justification, "wheels": view.wheels}))
        return 0
    _out(*HEADER)
    for view in views:
        _out(*_row(view))
    return 0


def _row(view: packages.PackageView) -> tuple[str | None, ...]:
    return (
        view.uuid,
        view.project,
        view.name,
        view.version_spec,
        view.state,
        view.requested_by,
        view.decided_by,
    )


def approve_package(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    view = packages.decide_package(ctx, a.actor, a.request, approve=True, wheels=a.wheel)
    for wheel in view.wheels:
        _out("wheel", wheel["filename"], wheel["sha256"])
    _out("package-request", view.uuid, view.name, view.state)
    return 0


def reject_package(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    view = packages.decide_package(ctx, a.actor, a.request, approve=False, reason=a.reason)
    _out("package-request", view.uuid, view.name, view.state)
    return 0
