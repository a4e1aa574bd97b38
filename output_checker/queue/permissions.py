"""Who may do what to a request: role rules only (what the request's state allows is in
``policies``). Pure.

Each rule is a raising ``check_*`` and a boolean ``can_*`` twin: faces use ``can_*`` to decide
which buttons to draw, the service layer calls ``check_*`` to enforce, so the two cannot
diverge. Separation of duties is stricter than Airlock's: no member of the request's project,
past or present, may review, approve, reject, return or download it (``ActorFacts``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from output_checker.queue.errors import PermissionDenied
from output_checker.queue.facts import ActorFacts
from output_checker.queue.workflow import Party, Visibility


def _separation(actor: ActorFacts, doing: str) -> None:
    if actor.is_author:
        raise PermissionDenied(
            f"{actor.email} wrote this request and cannot {doing} it", rule="separation_of_duties"
        )
    if actor.was_member:
        raise PermissionDenied(
            f"{actor.email} is or was a member of this project and cannot {doing} its requests",
            rule="separation_of_duties",
        )


def check_can_create(actor: ActorFacts) -> None:
    """A researcher (or a data lab client, whose reports leave this way) who is a current
    member of the project and accredited today."""
    if not (actor.is_researcher or actor.is_datalab_client):
        raise PermissionDenied(
            "creating a request requires the role researcher or datalab_client", rule="role"
        )
    if not actor.is_member:
        raise PermissionDenied(f"{actor.email} is not a member of this project", rule="membership")
    if not actor.accredited:
        raise PermissionDenied(
            f"the accreditation of {actor.email} does not cover today", rule="accreditation"
        )


def check_can_author(actor: ActorFacts) -> None:
    """Change, submit, resubmit or withdraw: only the request's author, while still a member."""
    if not actor.is_author:
        raise PermissionDenied("only the request's author may do this", rule="not_author")
    if not actor.is_member:
        raise PermissionDenied(
            f"{actor.email} is no longer a member of this project", rule="membership"
        )


def check_can_review(actor: ActorFacts) -> None:
    """Vote, submit a review, comment privately, return, approve, reject: eligible checkers."""
    if not actor.is_checker:
        raise PermissionDenied("reviewing requires the role output_checker", rule="role")
    _separation(actor, "review")


def check_can_view(actor: ActorFacts) -> None:
    """See the request in the browser: current project members and eligible checkers."""
    if actor.is_member:
        return
    if actor.is_checker:
        _separation(actor, "view")
        return
    raise PermissionDenied(
        f"{actor.email} is neither a member of this project nor an output checker", rule="role"
    )


def check_can_comment(actor: ActorFacts, visibility: Visibility) -> None:
    """Members write public comments; eligible checkers write public or private ones."""
    if actor.is_member:
        if visibility is Visibility.PRIVATE:
            raise PermissionDenied("only output checkers may write private comments", rule="role")
        return
    check_can_review(actor)


def check_can_download(actor: ActorFacts) -> None:
    """Download a file under review (audited): eligible checkers only; the author's side views
    files in the browser and downloads only what has been released."""
    if not actor.is_checker:
        raise PermissionDenied("downloading requires the role output_checker", rule="role")
    _separation(actor, "download")


def check_can_download_release(actor: ActorFacts) -> None:
    """Download a released file: the project's members, and eligible checkers."""
    if actor.is_member:
        return
    check_can_download(actor)


def check_can_revoke(actor: ActorFacts) -> None:
    """Revoke a release (breach handling): an eligible checker, or an admin with no tie to
    the project."""
    if actor.is_admin and not actor.is_checker:
        _separation(actor, "revoke")
        return
    check_can_review(actor)


def check_can_force_status(actor: ActorFacts) -> None:
    """The audited operator escape hatch: admins with no tie to the project."""
    if not actor.is_admin:
        raise PermissionDenied("forcing a status requires the role admin", rule="role")
    _separation(actor, "force the status of")


# A signer must be trusted with outputs already (the delegates' roles, and the custodian's).
SIGNER_ROLES = frozenset({"output_checker", "data_custodian"})


def check_can_sign_off(actor: ActorFacts, signers: Iterable[str]) -> None:
    """Sign off a dataset's outputs (SATRE 3.1.06): its custodian or an active delegate
    (``signers``) holding a signer role, who neither wrote the request nor is or was a
    member of its project."""
    if actor.email not in set(signers):
        raise PermissionDenied(
            f"{actor.email} is neither the custodian of this dataset nor a delegate",
            rule="not_signer",
        )
    if not SIGNER_ROLES & actor.roles:
        raise PermissionDenied(
            "signing off requires the role output_checker or data_custodian", rule="role"
        )
    _separation(actor, "sign off")


def can_sign_off(actor: ActorFacts, signers: Iterable[str]) -> bool:
    """Boolean twin of ``check_can_sign_off``: whether it would pass."""
    return _allowed(lambda: check_can_sign_off(actor, signers))


def party_of(actor: ActorFacts) -> Party:
    """The workflow party the actor acts as: author, eligible checker, else admin."""
    if actor.is_author:
        return Party.AUTHOR
    if actor.is_reviewer:
        return Party.CHECKER
    return Party.ADMIN


def _allowed(check: Callable[[], None]) -> bool:
    try:
        check()
    except PermissionDenied:
        return False
    return True


def can_create(actor: ActorFacts) -> bool:
    """Boolean twin of ``check_can_create``: whether it would pass."""
    return _allowed(lambda: check_can_create(actor))


def can_author(actor: ActorFacts) -> bool:
    """Boolean twin of ``check_can_author``: whether it would pass."""
    return _allowed(lambda: check_can_author(actor))


def can_review(actor: ActorFacts) -> bool:
    """Boolean twin of ``check_can_review``: whether it would pass."""
    return _allowed(lambda: check_can_review(actor))


def can_view(actor: ActorFacts) -> bool:
    """Boolean twin of ``check_can_view``: whether it would pass."""
    return _allowed(lambda: check_can_view(actor))


def can_comment(actor: ActorFacts, visibility: Visibility) -> bool:
    """Boolean twin of ``check_can_comment``: whether it would pass."""
    return _allowed(lambda: check_can_comment(actor, visibility))


def can_download(actor: ActorFacts) -> bool:
    """Boolean twin of ``check_can_download``: whether it would pass."""
    return _allowed(lambda: check_can_download(actor))


def can_download_release(actor: ActorFacts) -> bool:
    """Boolean twin of ``check_can_download_release``: whether it would pass."""
    return _allowed(lambda: check_can_download_release(actor))


def can_revoke(actor: ActorFacts) -> bool:
    """Boolean twin of ``check_can_revoke``: whether it would pass."""
    return _allowed(lambda: check_can_revoke(actor))


def can_force_status(actor: ActorFacts) -> bool:
    """Boolean twin of ``check_can_force_status``: whether it would pass."""
    return _allowed(lambda: check_can_force_status(actor))
