"""Creating a release request through the review queue's JSON API, outside a sandbox.

The bundle ``finalise`` would write to the outbox becomes, call by call, the request the
outbox watcher would make of it (``<url>/api/v1``, ``Authorization: Bearer <token>``):

1. ``POST /requests`` ``{"project", "title"}`` (201): a pending request. An empty title
   becomes a fresh bundle name, as the watcher names an untitled bundle.
2. For every file of the manifest, in order, ``POST /requests/{id}/files`` (multipart:
   ``file``, ``name``, ``kind``, ``group``, ``exception``, and the checker's ``record`` and
   the ``recipe`` as JSON). The server snapshots the file, binds the record to its sha256 and
   re-checks it; the sha256 it answers must be the manifest's.
3. For every group whose context and controls are both written, ``POST
   /requests/{id}/groups``. (The API takes both or neither, so a half-described group is
   left for the researcher to describe in the queue.)
4. Only when asked: ``POST /requests/{id}/submit``. Otherwise the request stays pending and
   the researcher completes and submits it in the queue.

If any step after the first fails (or is interrupted), the request is withdrawn, so no
half-built request is left pending, and AnalysisError carries the queue's reason in one
line. The token goes only over HTTPS, or plain HTTP to this machine (never through a proxy),
redirects are refused (following one would hand the token on), and it is never put into a
message. This module speaks HTTP only: it imports nothing from the queue.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from enclave.analysis.bundle import BundleContent, bundle_name
from enclave.analysis.errors import AnalysisError

API = "/api/v1"
TIMEOUT_SECONDS = 60.0
MAX_REASON = 200


@dataclass(frozen=True)
class Created:
    """A request made through the API: its id, its status (``pending``, or ``submitted``
    when submitted at once) and the server's automated status of each file (None for
    supporting files)."""

    request_id: str
    status: str
    verdicts: dict[str, str | None]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are refused: following one would hand the token to another address."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_base(queue_url: str) -> str:
    """The API root of ``queue_url``; AnalysisError unless it is HTTPS or loopback HTTP
    without credentials, query or fragment."""
    parsed = urllib.parse.urlsplit(queue_url)
    if parsed.scheme not in ("https", "http") or not parsed.hostname:
        raise AnalysisError("ENCLAVE_QUEUE_URL must be an http(s) URL")
    if parsed.scheme == "http" and not _loopback(parsed.hostname):
        raise AnalysisError("ENCLAVE_QUEUE_URL must use https (plain http only to this machine)")
    if parsed.username or parsed.password or parsed.query or parsed.fragment:
        raise AnalysisError("ENCLAVE_QUEUE_URL must not carry credentials, a query or fragment")
    return queue_url.rstrip("/") + API


def multipart(
    fields: Sequence[tuple[str, str]], file_field: str, file_name: str, data: bytes
) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body (RFC 7578) of text ``fields`` and one file; returns the
    body and its Content-Type. The boundary is random and checked not to occur in any part."""
    if any(c in file_name for c in '"\\') or not file_name.isprintable():
        raise AnalysisError(f"file name {file_name[:60]!r} cannot be uploaded")
    while True:
        boundary = f"enclave-{secrets.token_hex(16)}"
        mark = boundary.encode("ascii")
        values = [(key, value.encode("utf-8")) for key, value in fields]
        if mark not in data and not any(mark in value for _, value in values):
            break
    parts: list[bytes] = []
    for key, value in values:
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'
        parts += [head.encode("ascii"), value, b"\r\n"]
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; '
        f'filename="{file_name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    )
    parts += [head.encode("utf-8"), data, b"\r\n", f"--{boundary}--\r\n".encode("ascii")]
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _one_line(text: str) -> str:
    return " ".join(text.split())[:MAX_REASON]


@dataclass(frozen=True)
class _Client:
    """POSTs to the API root with the bearer token; every failure is one AnalysisError."""

    base: str
    token: str
    timeout: float

    def post(
        self, path: str, what: str, body: bytes = b"", content_type: str = ""
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(
            self.base + path, data=body, method="POST", headers=headers
        )
        handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
        if self.base.startswith("http:"):  # the token in clear: never to a proxy
            handlers.append(urllib.request.ProxyHandler({}))
        try:
            with urllib.request.build_opener(*handlers).open(
                request, timeout=self.timeout
            ) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            raise AnalysisError(self._refusal(what, error)) from None
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            why = _one_line(str(getattr(error, "reason", error)))
            raise AnalysisError(f"cannot reach the queue: {why}") from None
        answer = _json(raw)
        if answer is None:
            raise AnalysisError(f"the queue's answer to {what} is not a JSON object")
        return answer

    def json(self, path: str, what: str, document: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(document, allow_nan=False).encode("utf-8")
        return self.post(path, what, body, "application/json")

    def _refusal(self, what: str, error: urllib.error.HTTPError) -> str:
        if 300 <= error.code < 400:
            return f"the queue answered {what} with a redirect (HTTP {error.code}), not followed"
        answer = _json(error.read()) or {}
        reason = _one_line(str(answer.get("error") or error.reason or ""))
        return f"the queue refused {what} (HTTP {error.code}): {reason}".replace(self.token, "…")


def _json(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _request_id(answer: dict[str, Any]) -> str:
    """The new request's id, which must be a UUID (it becomes part of every later path)."""
    value = answer.get("id")
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise AnalysisError("the queue's answer names no request id") from None


def _upload(client: _Client, path: str, entry: dict[str, Any], data: bytes) -> str | None:
    """Upload one manifest entry with its bytes; returns the server's automated status."""
    name = entry["name"]
    fields = [("name", name), ("kind", entry.get("kind", "output"))]
    fields += [("group", entry.get("group", "default")), ("exception", entry.get("exception", ""))]
    for key in ("record", "recipe"):
        if entry.get(key) is not None:
            fields.append((key, json.dumps(entry[key], allow_nan=False)))
    body, content_type = multipart(fields, "file", name, data)
    added = client.post(f"{path}/files", name, body, content_type)
    if added.get("sha256") != entry["sha256"]:
        raise AnalysisError(f"the queue stored other bytes for {name} than were sent")
    status = added.get("automated_status")
    return status if isinstance(status, str) else None


def _build(client: _Client, path: str, content: BundleContent) -> dict[str, str | None]:
    data = dict(content.files)
    verdicts = {e["name"]: _upload(client, path, e, data[e["name"]])
                for e in content.manifest["files"]}  # fmt: skip
    for group, spec in content.manifest.get("groups", {}).items():
        text = {"context": spec.get("context", ""), "controls": spec.get("controls", "")}
        if all(value.strip() for value in text.values()):
            client.json(f"{path}/groups", f"the description of {group}", {"name": group, **text})
    return verdicts


def _withdraw(client: _Client, path: str, request_id: str) -> str:
    try:
        client.post(f"{path}/withdraw", "the withdrawal")
    except AnalysisError as error:
        return f"request {request_id} could not be withdrawn ({error}): withdraw it in the queue"
    return f"request {request_id} withdrawn"


def create_request(
    queue_url: str,
    token: str,
    project: str,
    content: BundleContent,
    *,
    submit_now: bool = False,
    timeout: float = TIMEOUT_SECONDS,
) -> Created:
    """Create the request of ``content`` on ``project`` through the API; pending unless
    ``submit_now``. Raises AnalysisError with the queue's reason (the request withdrawn)."""
    if not token:
        raise AnalysisError("no queue token: set ENCLAVE_QUEUE_TOKEN")
    client = _Client(api_base(queue_url), token, timeout)
    title = str(content.manifest.get("title") or bundle_name())
    request_id = _request_id(
        client.json("/requests", "the new request", {"project": project, "title": title})
    )
    path = f"/requests/{request_id}"
    try:
        verdicts = _build(client, path, content)
        status = "pending"
        if submit_now:
            status = str(client.post(f"{path}/submit", "the submission").get("status"))
    except AnalysisError as error:
        raise AnalysisError(f"{error}; {_withdraw(client, path, request_id)}") from None
    except BaseException:  # interrupted half-way: leave no half-built request behind
        _withdraw(client, path, request_id)
        raise
    return Created(request_id, status, verdicts)
