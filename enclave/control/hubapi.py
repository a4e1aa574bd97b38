"""JupyterHub's REST API, spoken by the group mirror (``enclave.control.hub``) and the access
enforcer (``enclave.hub.enforcer``): one transport over TCP, TLS or the hub's own unix socket
(``http+unix://<quoted socket path>/hub/api``, as JupyterHub writes ``hub_connect_url``).

Errors are ``IntegrationError`` (rule ``hub``): their message names the method, the path and
the status, never the token or a response body.
"""

from __future__ import annotations

import http.client
import json
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from enclave.control.errors import IntegrationError

PAGE = 200


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over a unix socket (the hub's ``http+unix://`` API URL)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("127.0.0.1", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def quote_name(name: str) -> str:
    """A user, group or server name as one path segment."""
    return quote(name, safe="")


@dataclass(frozen=True)
class HubApi:
    """Calls on the API root ``api_url`` (``http://127.0.0.1:8081/hub/api``, ``https://...`` or
    ``http+unix://...``) with ``token``. A call that stops a server can take the hub's
    ``slow_stop_timeout`` to answer: give such callers a long ``timeout``."""

    api_url: str
    token: str = field(repr=False)
    timeout: float = 10.0

    def __post_init__(self) -> None:
        scheme = urlsplit(self.api_url).scheme
        if scheme not in ("http", "https", "http+unix"):
            raise ValueError(f"hub API URL must be http, https or http+unix; got {scheme!r}")

    def _connection(self) -> http.client.HTTPConnection:
        parts = urlsplit(self.api_url)
        if parts.scheme == "http+unix":
            return _UnixConnection(unquote(parts.netloc), self.timeout)
        if parts.scheme == "https":
            return http.client.HTTPSConnection(parts.netloc, timeout=self.timeout)
        return http.client.HTTPConnection(parts.netloc, timeout=self.timeout)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """``method path`` (relative to the API root) with an optional JSON body; the decoded
        JSON answer, or None for an empty one."""
        url = urlsplit(self.api_url).path.rstrip("/") + path
        headers = {
            "Authorization": f"token {self.token}",
            "Accept": "application/jupyterhub-pagination+json",
        }
        payload = None
        if body is not None:
            payload = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        connection = self._connection()
        try:
            connection.request(method, url, body=payload, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as error:
            raise IntegrationError(
                f"cannot reach JupyterHub at {self.api_url} ({type(error).__name__})", rule="hub"
            ) from None
        finally:
            connection.close()
        if response.status >= 400:
            raise IntegrationError(
                f"JupyterHub refused {method} {path}: HTTP {response.status}", rule="hub"
            )
        return json.loads(raw) if raw else None

    def paged(self, path: str, query: str = "") -> list[dict[str, Any]]:
        """Every item of a paginated list (``query``: extra parameters, ``a=b&c=d``)."""
        items: list[dict[str, Any]] = []
        offset = 0
        extra = f"&{query}" if query else ""
        while True:
            page = self.call("GET", f"{path}?offset={offset}&limit={PAGE}{extra}")
            if isinstance(page, list):  # a hub without pagination returns everything
                return items + page
            items.extend(page["items"])
            following = (page.get("_pagination") or {}).get("next")
            if not following:
                return items
            offset = int(following["offset"])
