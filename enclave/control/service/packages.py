"""Software ingress: reviewed package requests and the sessions' wheelhouse (SATRE 2.1.12-13).

A researcher of a project asks for a package (``request_package``); an admin other than the
requester decides (``decide_package``). Approval takes the wheel file(s) the operator fetched
on the host: this module never downloads anything. Each wheel must be the requested project
(by its file name and by the ``Name`` in its metadata) and, when the request names a version
specifier, of a matching version; it is copied into ``<data_dir>/packages/wheels`` (under a
temporary name, then renamed) and its sha256 recorded on the request. The simple index and
the sessions' pip.conf are then written again from the recorded wheels (``wheelhouse_index``);
a wheel whose file no longer has its recorded hash is left out of the index. Sessions see
the wheelhouse read-only and have no network (``enclave.hub.sandbox``).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from sqlalchemy import select
from sqlalchemy.orm import Session

from enclave.control import wheelhouse
from enclave.control.audit import canonical_json
from enclave.control.context import Context
from enclave.control.errors import Conflict, InvalidInput, NotFound, PermissionDenied, RuleViolation
from enclave.control.models import Membership, PackageRequest, Person, Project
from enclave.control.rules import Action, Role
from enclave.control.service._base import (
    authorize,
    clean_paragraph,
    clean_text,
    email_of,
    perform,
    project_row,
    read_as,
    record,
)

PACKAGES_DIR = "packages"


class PackageState:
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(frozen=True)
class PackageView:
    """A package request as faces show it; ``wheels`` lists ``{"filename", "sha256"}``."""

    uuid: str
    project: str
    name: str
    version_spec: str
    justification: str
    state: str
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    reason: str
    wheels: list[dict[str, str]]


def wheelhouse_dir(data_dir: Path) -> Path:
    return data_dir / PACKAGES_DIR


def _view(session: Session, row: PackageRequest) -> PackageView:
    project = session.get(Project, row.project_id)
    return PackageView(
        uuid=row.uuid,
        project=project.slug if project else "",
        name=row.name,
        version_spec=row.version_spec,
        justification=row.justification,
        state=row.state,
        requested_by=email_of(session, row.requested_by_id) or "",
        requested_at=row.requested_at,
        decided_by=email_of(session, row.decided_by_id),
        decided_at=row.decided_at,
        reason=row.reason,
        wheels=json.loads(row.wheels),
    )


def _is_researcher_of(session: Session, me: Person, project: Project, ctx: Context) -> bool:
    query = select(Membership.id).where(
        Membership.project_id == project.id,
        Membership.person_id == me.id,
        Membership.role == Role.RESEARCHER,
        Membership.removed_at.is_(None),
        Membership.expires_on >= ctx.today(),
    )
    return session.scalar(query.limit(1)) is not None


def _clean_name(name: str) -> str:
    text = clean_text(name, "package name", 100)
    if not wheelhouse.valid_project_name(text):
        raise InvalidInput(f"{text!r} is not a valid package name", rule="invalid_package")
    return wheelhouse.normalise(text)


def _clean_spec(spec: str) -> str:
    text = clean_text(spec, "version specifier", 100, required=False)
    try:
        SpecifierSet(text)
    except InvalidSpecifier:
        raise InvalidInput(
            f"{text!r} is not a version specifier (e.g. '>=1.2,<2')", rule="invalid_spec"
        ) from None
    return text


def request_package(
    ctx: Context, actor: str, project: str, name: str, *, why: str, version: str = ""
) -> PackageView:
    """Ask for ``name`` (optionally ``version``, a PEP 440 specifier) in the wheelhouse for
    ``project``: the actor must be a current researcher member of it (``not_a_member``)."""
    package, spec = _clean_name(name), _clean_spec(version)
    justification = clean_paragraph(why, "justification", 2000)

    def work(session: Session, me: Person) -> PackageView:
        row_project = project_row(session, project)
        authorize(me, Action.REQUEST_PACKAGE, row_project)
        if not _is_researcher_of(session, me, row_project, ctx):
            raise PermissionDenied(
                f"only a researcher of {project} may request packages for it",
                rule="not_a_member",
            )
        row = PackageRequest(
            uuid=str(uuid.uuid4()),
            project_id=row_project.id,
            requested_by_id=me.id,
            requested_at=ctx.now(),
            name=package,
            version_spec=spec,
            justification=justification,
            state=PackageState.REQUESTED,
            reason="",
            wheels="[]",
        )
        session.add(row)
        session.flush()
        record(
            session,
            ctx,
            me,
            Action.REQUEST_PACKAGE,
            target=row.uuid,
            project=project,
            package=package,
            version_spec=spec,
            justification=justification,
        )
        return _view(session, row)

    return perform(ctx, actor, Action.REQUEST_PACKAGE, work, target=package, project=project)


def _request_row(session: Session, request_uuid: str) -> PackageRequest:
    row = session.scalar(select(PackageRequest).where(PackageRequest.uuid == request_uuid))
    if row is None:
        raise NotFound(f"unknown package request {request_uuid!r}", rule="unknown_request")
    return row


def _decidable(session: Session, me: Person, request_uuid: str) -> PackageRequest:
    authorize(me, Action.DECIDE_PACKAGE)
    row = _request_row(session, request_uuid)
    if row.requested_by_id == me.id:
        raise PermissionDenied("no one may decide on their own package request", rule="own_request")
    if row.state != PackageState.REQUESTED:
        raise RuleViolation(
            f"the request is {row.state}; only a pending request can be decided",
            rule="request_state",
        )
    return row


def _metadata_name(path: Path) -> str | None:
    """The normalised ``Name`` in a wheel's ``*.dist-info/METADATA``; None if unreadable."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.count("/") == 1]
            meta = [n for n in names if n.endswith(".dist-info/METADATA")]
            if len(meta) != 1:
                return None
            text = archive.read(meta[0]).decode("utf-8", errors="replace")
    except (OSError, zipfile.BadZipFile):
        return None
    name = HeaderParser().parsestr(text).get("Name")
    return wheelhouse.normalise(name) if name else None


def _check_wheel(path: Path, package: str, spec: str) -> wheelhouse.WheelName:
    """The wheel's parsed name if ``path`` is a wheel of ``package`` matching ``spec``."""
    try:
        parsed = wheelhouse.parse_wheel_name(path.name)
    except wheelhouse.BadWheelName as error:
        raise InvalidInput(str(error), rule="not_a_wheel") from None
    if parsed.project != package:
        raise RuleViolation(
            f"{path.name} is a wheel of {parsed.project}, not of the requested {package}",
            rule="wrong_package",
        )
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}", rule="no_such_file")
    if _metadata_name(path) != package:
        raise RuleViolation(
            f"{path.name}: its metadata does not name {package}", rule="wrong_package"
        )
    if spec and parsed.version not in SpecifierSet(spec, prereleases=True):
        raise RuleViolation(
            f"{path.name}: version {parsed.version} does not match {spec}", rule="wrong_version"
        )
    return parsed


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _store_wheel(folder: Path, source: Path) -> tuple[str, bool]:
    """Copy ``source`` into ``folder`` under its own name (temporary name, then rename).
    Returns (sha256, whether this call created the file). An existing file of that name is
    kept only if it has the same content (Conflict ``wheel_exists`` otherwise)."""
    target = folder / source.name
    temp = folder / f".incoming-{secrets.token_hex(8)}"
    digest = hashlib.sha256()
    try:
        with source.open("rb") as reader, temp.open("xb") as writer:
            for block in iter(lambda: reader.read(1 << 20), b""):
                digest.update(block)
                writer.write(block)
            writer.flush()
            os.fsync(writer.fileno())
        sha256 = digest.hexdigest()
        if target.exists():
            if _sha256(target) != sha256:
                raise Conflict(
                    f"the wheelhouse already holds a different {source.name}", rule="wheel_exists"
                )
            return sha256, False
        os.chmod(temp, 0o444)  # world-readable: the session accounts read it
        temp.replace(target)
        return sha256, True
    finally:
        temp.unlink(missing_ok=True)


def _prepare(data_dir: Path) -> Path:
    folder = wheelhouse_dir(data_dir) / wheelhouse.WHEELS
    folder.mkdir(parents=True, exist_ok=True)
    for level in (folder.parent, folder):
        os.chmod(level, 0o755)
    return folder


def decide_package(
    ctx: Context,
    actor: str,
    request_uuid: str,
    *,
    approve: bool,
    reason: str = "",
    wheels: Sequence[Path | str] = (),
) -> PackageView:
    """Approve (with ``wheels``, at least one) or reject (with a ``reason``) a pending
    request: an admin who did not make it. On approval the wheels are checked and copied
    into the wheelhouse, their hashes recorded, and the index written again; on any refusal
    nothing is left behind."""
    why = clean_text(reason, "reason", 500, required=not approve)
    paths = [Path(p) for p in wheels]
    if approve and not paths:
        raise InvalidInput("approving a package needs at least one --wheel", rule="no_wheel")
    if not approve and paths:
        raise InvalidInput("a rejection takes no wheels", rule="invalid_input")

    def may_decide(session: Session, me: Person) -> tuple[str, str]:
        row = _decidable(session, me, request_uuid)
        for path in paths:
            _check_wheel(path, row.name, row.version_spec)
        return row.name, row.version_spec

    read_as(ctx, actor, Action.DECIDE_PACKAGE, may_decide, target=request_uuid)
    stored: list[dict[str, str]] = []
    created: list[Path] = []
    try:
        if paths:
            folder = _prepare(ctx.data_dir)
            for path in paths:
                sha256, new = _store_wheel(folder, path)
                stored.append({"filename": path.name, "sha256": sha256})
                if new:
                    created.append(folder / path.name)

        def work(session: Session, me: Person) -> PackageView:
            may_decide(session, me)  # again, inside the writing transaction
            return _decide(ctx, session, me, request_uuid, approve, why, stored)

        view = perform(ctx, actor, Action.DECIDE_PACKAGE, work, target=request_uuid)
    except BaseException:
        for path in created:  # no wheel is left behind for an approval that did not happen
            path.unlink(missing_ok=True)
        raise
    if approve:
        wheelhouse_index(ctx)
    return view


def _decide(
    ctx: Context,
    session: Session,
    me: Person,
    request_uuid: str,
    approve: bool,
    why: str,
    stored: list[dict[str, str]],
) -> PackageView:
    row = _request_row(session, request_uuid)
    row.state = PackageState.APPROVED if approve else PackageState.REJECTED
    row.decided_at, row.decided_by_id, row.reason = ctx.now(), me.id, why
    row.wheels = canonical_json(stored)
    session.flush()
    project = session.get(Project, row.project_id)
    record(
        session,
        ctx,
        me,
        Action.DECIDE_PACKAGE,
        target=row.uuid,
        project=project.slug if project else None,
        package=row.name,
        decision=row.state,
        reason=why,
        wheels=stored,
    )
    return _view(session, row)


def list_packages(ctx: Context, actor: str, *, state: str | None = None) -> list[PackageView]:
    """Package requests, oldest first: every one for admins, those of the projects where the
    actor is a researcher otherwise."""

    def work(session: Session, me: Person) -> list[PackageView]:
        authorize(me, Action.LIST_PACKAGES)
        query = select(PackageRequest).order_by(PackageRequest.requested_at, PackageRequest.id)
        if state is not None:
            query = query.where(PackageRequest.state == state)
        rows = list(session.scalars(query))
        if Role.ADMIN not in me.role_names:
            rows = [r for r in rows if _is_researcher_of(session, me, _project(session, r), ctx)]
        return [_view(session, row) for row in rows]

    return read_as(ctx, actor, Action.LIST_PACKAGES, work)


def _project(session: Session, row: PackageRequest) -> Project:
    project = session.get(Project, row.project_id)
    assert project is not None  # a foreign key
    return project


def approved_wheels(ctx: Context) -> dict[str, str]:
    """File name -> sha256 of every wheel recorded on an approved request."""
    with ctx.engine.connect() as connection:
        query = select(PackageRequest.wheels).where(PackageRequest.state == PackageState.APPROVED)
        recorded: list[Any] = [json.loads(text) for text in connection.scalars(query)]
    return {w["filename"]: w["sha256"] for wheels in recorded for w in wheels}


def wheelhouse_index(ctx: Context) -> dict[str, str]:
    """Write the simple index and pip.conf from the approved wheels whose files still have
    their recorded hash; return those (file name -> sha256)."""
    folder = _prepare(ctx.data_dir)
    intact = {
        name: sha
        for name, sha in approved_wheels(ctx).items()
        if (folder / name).is_file() and _sha256(folder / name) == sha
    }
    root = folder.parent
    files = {**wheelhouse.index_pages(intact), wheelhouse.PIP_CONF: wheelhouse.pip_conf()}
    for relative, text in files.items():
        _write(root, relative, text)
    return intact


def _write(root: Path, relative: str, text: str) -> None:
    """Write ``root/relative`` world-readable, through a temporary file and a rename."""
    target = root / relative
    for parent in reversed(target.relative_to(root).parents):
        level = root / parent
        level.mkdir(exist_ok=True)
        os.chmod(level, 0o755)
    temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}")
    temp.write_text(text, encoding="utf-8")
    os.chmod(temp, 0o644)
    temp.replace(target)
