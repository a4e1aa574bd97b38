"""The review queue's exceptions. ``str(error)`` is one line fit to show a person.

Each class also derives from the control plane's class of the same meaning, so a face maps the
queue's refusals and the control plane's to HTTP in one handler (``NotFound`` -> 404,
``PermissionDenied`` -> 403, ``InvalidInput`` -> 400, ``Conflict`` -> 409). ``rule`` is a
short stable code naming what refused the action (``status``, ``separation_of_duties``, ...).
"""

from __future__ import annotations

from enclave.control import errors as control


class QueueError(control.ControlError):
    """Base class: a queue action was refused or could not be carried out."""

    default_rule = "queue"


class InvalidInput(QueueError, control.InvalidInput):
    """The input is malformed: an empty comment, a bad file name, an invalid manifest."""

    default_rule = "invalid_input"


class BundleRejected(InvalidInput):
    """An outbox bundle is unsafe or malformed and will not become a request."""

    default_rule = "bundle"


class NotFound(QueueError, control.NotFound):
    """The request, file or comment does not exist, or the actor may not know it exists."""

    default_rule = "not_found"


class PermissionDenied(QueueError, control.PermissionDenied):
    """The actor's role or relation to the project does not allow the action."""

    default_rule = "permission"


class WorkflowError(QueueError, control.RuleViolation):
    """The request's state does not allow the action, or a precondition is not met."""

    default_rule = "workflow"


class Conflict(QueueError, control.Conflict):
    """The request changed underneath the action (retry), or something already exists."""

    default_rule = "conflict"


class IntegrityFailure(QueueError):
    """A stored snapshot no longer hashes to its recorded sha256: never serve or release it."""

    default_rule = "integrity"
