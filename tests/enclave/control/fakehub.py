"""A tiny stand-in for JupyterHub's REST API (groups and users), recording every call."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlparse

TOKEN = "hub-test-token"


class FakeHubState:
    def __init__(self) -> None:
        self.groups: dict[str, set[str]] = {}
        self.users: set[str] = set()
        self.calls: list[tuple[str, str, Any]] = []

    def writes(self) -> list[tuple[str, str, Any]]:
        return [c for c in self.calls if c[0] != "GET"]


def _handler(state: FakeHubState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def _reply(self, status: int, body: Any = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            path = urlparse(self.path).path
            state.calls.append((method, path, body))
            if self.headers.get("Authorization") != f"token {TOKEN}":
                return self._reply(403)
            parts = [unquote(p) for p in path.split("/") if p][2:]  # drop hub/api
            return self._route(method, parts, body)

        def _route(self, method: str, parts: list[str], body: Any) -> None:
            if parts == ["groups"] and method == "GET":
                items = [{"name": n, "users": sorted(u)} for n, u in sorted(state.groups.items())]
                return self._reply(200, {"items": items, "_pagination": {"next": None}})
            if parts == ["users"] and method == "GET":
                return self._reply(200, [{"name": n} for n in sorted(state.users)])
            if parts == ["users"] and method == "POST":
                state.users |= set(body["usernames"])
                return self._reply(201, [])
            if len(parts) == 2 and parts[0] == "groups":
                if method == "POST":
                    state.groups.setdefault(parts[1], set())
                    return self._reply(201, {})
                state.groups.pop(parts[1], None)
                return self._reply(204)
            if len(parts) == 3 and parts[2] == "users" and parts[1] in state.groups:
                names = set(body["users"])
                if not names <= state.users:
                    return self._reply(400)
                if method == "POST":
                    state.groups[parts[1]] |= names
                else:
                    state.groups[parts[1]] -= names
                return self._reply(200, {})
            return self._reply(404)

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

    return Handler


@contextmanager
def fake_hub() -> Iterator[tuple[str, FakeHubState]]:
    """Yield the API URL of a fake hub on 127.0.0.1 and its state; stop it afterwards."""
    state = FakeHubState()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hub/api", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
