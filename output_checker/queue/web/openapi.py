"""The queue API's contract (``enclave.control.web.contract.ApiContract``): its request schemas
(JSON and multipart; JSON ones also validate requests), the service views its responses are
made of, and its wording.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from enclave.control.web.contract import ApiContract, json_object
from output_checker.queue.service.signoffs import SignoffView
from output_checker.queue.views import (
    ActivityEntry,
    CommentView,
    FileView,
    GroupView,
    ReleaseView,
    RequestDetail,
    RequestSummary,
    VoteView,
)
from output_checker.queue.web.paging import QUERY_SCHEMAS


def _text(max_length: int, min_length: int = 0) -> dict[str, Any]:
    return {"type": "string", "maxLength": max_length, "minLength": min_length}


_COMMENT = _text(20_000)
_GROUP = {"type": "string", "maxLength": 100, "examples": ["tables"]}
_KIND = {"enum": ["output", "supporting"]}
_JSON_PART = {
    "type": "string",
    "description": "a JSON object (a text field or a file part)",
}

# Request bodies. JSON ones are validated before the service is called (which validates
# again, and alone knows the rules); multipart ones describe the upload form.
REQUEST_SCHEMAS: Mapping[str, dict[str, Any]] = {
    "RequestCreate": json_object(
        ["project"], project={"type": "string", "maxLength": 64}, title=_text(200)
    ),
    "GroupSet": json_object(
        ["name", "context", "controls"],
        name=_GROUP,
        context=_text(10_000, 1),
        controls=_text(10_000, 1),
    ),
    "FileMove": json_object([], group=_GROUP, kind=_KIND),
    "ExceptionText": json_object(["text"], text=_text(5_000)),
    "CommentCreate": json_object(
        ["body"],
        body=_text(20_000, 1),
        group=_GROUP,
        file_id={"type": "string", "format": "uuid"},
        visibility={"enum": ["public", "private"]},
    ),
    "VoteCast": json_object(
        ["choice"], choice={"enum": ["approve", "request_changes"]}, comment=_COMMENT
    ),
    "SignoffCast": json_object(
        ["dataset", "decision"],
        dataset={"type": "string", "maxLength": 64},
        decision={"enum": ["approve", "refuse"]},
        reason=_COMMENT,
    ),
    "OptionalComment": json_object([], comment=_COMMENT),
    "ReleaseComment": json_object(["comment"], comment=_text(20_000, 1)),
    "Reason": json_object(["reason"], reason=_text(20_000, 1)),
    "FileUpload": {
        "type": "object",
        "properties": {
            "file": {"type": "string", "format": "binary"},
            "name": {"type": "string", "maxLength": 200},
            "kind": _KIND,
            "group": _GROUP,
            "record": _JSON_PART,
            "recipe": _JSON_PART,
            "exception": _text(5_000),
        },
        "required": ["file"],
    },
    "FileUpdate": {
        "type": "object",
        "properties": {
            "file": {"type": "string", "format": "binary"},
            "record": _JSON_PART,
            "recipe": _JSON_PART,
        },
        "required": ["file"],
    },
}

RESPONSE_VIEWS: tuple[type[Any], ...] = (
    RequestSummary,
    RequestDetail,
    FileView,
    GroupView,
    VoteView,
    CommentView,
    ReleaseView,
    ActivityEntry,
    SignoffView,
)
# The checkers' open reviews (not a view).
LOAD = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}


CONTRACT = ApiContract(
    title="Output review queue API",
    description="Everything the review queue's pages do, as JSON. Every call but this document "
    "needs `Authorization: Bearer <token>` (a control-plane token, `enclave admin issue-token`); "
    "the token's owner is the actor, and the queue's rules decide what they may do and see "
    "(blinding included).",
    request_schemas=REQUEST_SCHEMAS,
    response_views=RESPONSE_VIEWS,
    refusals={"403": "refused by the person's role", "409": "refused by the request's state"},
    fallback="bad input or not found",
    multipart=frozenset({"FileUpload", "FileUpdate"}),
    query_schemas=QUERY_SCHEMAS,
)
