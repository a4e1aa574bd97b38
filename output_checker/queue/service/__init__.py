"""The review queue's service layer: one function per intent, the only way faces (web, JSON
API, CLI) read or change the queue.

Every function takes the control plane's ``Context`` first and, for actions on behalf of a
person, that person's email (``actor``); request, file and comment ids are UUIDs. Each write
checks the role rule (``permissions``), the state rule (``policies``) and the transition
(``workflow``), then stores the change and its hash-chained audit event in one transaction.
A refusal raises a ``QueueError`` subclass (which is also the control plane's class of the
same meaning) and is audited in a transaction of its own.

Modules: ``requests`` (the author's files and groups), ``submission`` (submit, resubmit,
withdraw), ``reviews`` (checkers and comments), ``releases``
(approval, revocation, the operator command), ``reads`` (views, downloads, activity),
``intake`` (outbox bundles, for the watcher).
"""

from output_checker.queue.service.reads import (
    activity,
    download,
    download_release,
    get_request,
    list_requests,
    record_view,
    reviewer_load,
    view_file,
    view_request,
)
from output_checker.queue.service.releases import approve, force_status, revoke_release
from output_checker.queue.service.requests import (
    add_file,
    create_request,
    move_file,
    set_exception,
    set_group,
    update_file,
    withdraw_file,
)
from output_checker.queue.service.reviews import (
    comment,
    make_comment_public,
    reject,
    return_request,
    submit_review,
    vote,
)
from output_checker.queue.service.submission import resubmit, submit, withdraw

__all__ = [
    "activity",
    "add_file",
    "approve",
    "comment",
    "create_request",
    "download",
    "download_release",
    "force_status",
    "get_request",
    "list_requests",
    "make_comment_public",
    "move_file",
    "record_view",
    "reject",
    "resubmit",
    "return_request",
    "reviewer_load",
    "revoke_release",
    "set_exception",
    "set_group",
    "submit",
    "submit_review",
    "update_file",
    "view_file",
    "view_request",
    "vote",
    "withdraw",
    "withdraw_file",
]
