"""Reading a file upload (multipart form) into what ``service.add_file`` and ``update_file``
take, for the web form and the API alike.

The file's name is the uploaded one (or an explicit ``name`` field) and is passed to the
service unchanged: the service accepts only plain names (no directory part, no leading dot,
no ``..``), so a name such as ``../../etc/passwd`` is refused rather than quietly rewritten,
and nothing is ever written under a name taken from the request (snapshots are stored by
their hash). The checker's manifest ``record`` and the ``recipe`` arrive as JSON, either as
file parts or as text fields.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from werkzeug.datastructures import FileStorage, ImmutableMultiDict

from output_checker.queue.errors import InvalidInput


@dataclass(frozen=True)
class Upload:
    """One uploaded file and its JSON companions."""

    name: str
    data: bytes
    record: dict[str, Any] | None
    recipe: dict[str, Any] | None


def _json_part(
    name: str, files: ImmutableMultiDict[str, FileStorage], form: ImmutableMultiDict[str, str]
) -> dict[str, Any] | None:
    part = files.get(name)
    text: str | bytes = part.read() if part is not None and part.filename else ""
    if not text:
        text = form.get(name, "").strip()
    if not text:
        return None
    try:
        value = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput(f"{name} must be JSON", rule=f"bad_{name}") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{name} must be a JSON object", rule=f"bad_{name}")
    return value


def read_upload(
    files: ImmutableMultiDict[str, FileStorage], form: ImmutableMultiDict[str, str]
) -> Upload:
    """The upload in a multipart form: ``file`` (required), optional ``name``, ``record``
    and ``recipe``. InvalidInput names what is missing or malformed."""
    part = files.get("file")
    if part is None or not part.filename:
        raise InvalidInput("choose a file to upload (form field 'file')", rule="no_file")
    name = form.get("name", "").strip() or part.filename
    return Upload(
        name=name,
        data=part.read(),
        record=_json_part("record", files, form),
        recipe=_json_part("recipe", files, form),
    )
