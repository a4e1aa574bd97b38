"""The control plane's exceptions. ``str(error)`` is a one-line message fit to show a user.

Every error carries ``rule``: a short, stable code naming the rule that refused the action
(``purpose_binding``, ``accreditation``, ...). Faces map the classes to HTTP statuses in one
place; CLIs print the message and exit 2.
"""

from __future__ import annotations


class ControlError(Exception):
    """Base class: an action was refused or could not be carried out."""

    default_rule = "control"

    def __init__(self, message: str, *, rule: str | None = None, detail: str | None = None):
        super().__init__(message)
        self.message = message
        self.rule = rule or self.default_rule
        self.detail = detail  # for logs only; never shown to the user

    def __str__(self) -> str:
        return self.message


class InvalidInput(ControlError):
    """The request is malformed: a bad date, an unknown vocabulary word, an empty field."""

    default_rule = "invalid_input"


class NotFound(ControlError):
    """A person, project, dataset, grant or token named in the request does not exist."""

    default_rule = "not_found"


class Conflict(ControlError):
    """The request duplicates something that exists (an email, a slug, an open grant)."""

    default_rule = "duplicate"


class PermissionDenied(ControlError):
    """The actor's roles, or the object's state, do not allow this action."""

    default_rule = "permission"


class RuleViolation(ControlError):
    """A governance rule refuses the action (purpose binding, accreditation, two-person...)."""

    default_rule = "rule"


class AuthenticationFailed(ControlError):
    """Credentials (password, TOTP code or bearer token) were wrong, expired or revoked."""

    default_rule = "authentication"


class IntegrationError(ControlError):
    """An external system (JupyterHub) refused or could not be reached."""

    default_rule = "integration"
