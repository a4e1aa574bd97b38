"""Creating a release request through the queue's JSON API, outside a sandbox.

Provisional protocol until the queue's API lands (the queue issue): one ``POST
<ENCLAVE_QUEUE_URL>/api/v1/bundles`` with ``Authorization: Bearer <token>`` and the JSON body
``{"project", "manifest", "files": [{"name", "content_base64"}]}``, the same bundle the
outbox would receive; the answer is ``{"id": "<request id>"}`` (201). One request, so the
queue either creates the whole request or nothing. The token goes only over HTTPS, or plain
HTTP to this machine, and never into a message.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from enclave.analysis.bundle import BundleContent
from enclave.analysis.errors import AnalysisError

ENDPOINT = "/api/v1/bundles"
TIMEOUT_SECONDS = 60.0


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


def endpoint(queue_url: str) -> str:
    """The bundle endpoint of ``queue_url``; AnalysisError unless it is HTTPS or loopback."""
    parsed = urllib.parse.urlsplit(queue_url)
    if parsed.scheme not in ("https", "http") or not parsed.hostname:
        raise AnalysisError("ENCLAVE_QUEUE_URL must be an http(s) URL")
    if parsed.scheme == "http" and not _loopback(parsed.hostname):
        raise AnalysisError("ENCLAVE_QUEUE_URL must use https (plain http only to this machine)")
    if parsed.username or parsed.password or parsed.query or parsed.fragment:
        raise AnalysisError("ENCLAVE_QUEUE_URL must not carry credentials, a query or fragment")
    return queue_url.rstrip("/") + ENDPOINT


def post_bundle(
    queue_url: str,
    token: str,
    project: str,
    content: BundleContent,
    *,
    timeout: float = TIMEOUT_SECONDS,
) -> str:
    """Create the request; returns its id. Raises AnalysisError with the queue's reason."""
    if not token:
        raise AnalysisError("no queue token: set ENCLAVE_QUEUE_TOKEN")
    body = json.dumps(
        {
            "project": project,
            "manifest": content.manifest,
            "files": [
                {"name": name, "content_base64": base64.b64encode(data).decode("ascii")}
                for name, data in content.files
            ],
        },
        allow_nan=False,
    ).encode("utf-8")
    request = urllib.request.Request(
        endpoint(queue_url),
        data=body,
        method="POST",
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        },
    )
    try:
        opener = urllib.request.build_opener(_NoRedirect)
        with opener.open(request, timeout=timeout) as response:
            answer = _json(response.read())
    except urllib.error.HTTPError as error:
        reason = str(_json(error.read()).get("error") or error.reason)[:200]
        raise AnalysisError(
            f"the queue refused the request (HTTP {error.code}): {reason}"
        ) from None
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        why = getattr(error, "reason", error)
        raise AnalysisError(f"cannot reach the queue: {why}") from None
    request_id = answer.get("id")
    if not isinstance(request_id, str) or not request_id:
        raise AnalysisError("the queue's answer names no request id")
    return request_id


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
