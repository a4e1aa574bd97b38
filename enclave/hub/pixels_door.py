"""The front door of a pixels-only session: JupyterHub's login in front of the xpra server.

It listens on the session's socket, where the hub's proxy sends ``/user/<name>/<project>/``.
The page there, and the one WebSocket the xpra HTML5 client opens on the page's own path, are
only for a browser that JupyterHub's OAuth has shown to hold the session's access scope (the
check the browser tier's single-user server makes). The WebSocket is relayed to xpra on the
sandbox's loopback; nothing else reaches xpra (no HTTP: its ``info`` and other pages stay
inside). The client's scripts, styles and fonts are the Debian package's static files, the
same for everyone, served by the door itself without a login: a browser fetches fonts and
worker scripts in modes that JupyterHub's cookie check (its XSRF rule) turns away.

The door holds the hub token (``JUPYTERHUB_API_TOKEN``); xpra and the inner browser are
started without it (``enclave.hub.pixels_session``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jupyterhub  # type: ignore[import-untyped]
from jupyterhub.services.auth import (  # type: ignore[import-untyped]
    HubOAuth,
    HubOAuthCallbackHandler,
    HubOAuthenticated,
)
from jupyterhub.utils import url_path_join  # type: ignore[import-untyped]
from tornado import web, websocket

# Debian's xpra package's HTML5 client: static files, the same for everyone
XPRA_WWW = Path("/usr/share/xpra/www")
DEBIAN_JAVASCRIPT = "/usr/share/javascript"
# xpra's HTML5 client asks for this WebSocket subprotocol
SUBPROTOCOL = "binary"
MAX_FRAME = 64 * 1024 * 1024  # a full-screen frame, uncompressed


class _Authenticated(HubOAuthenticated):  # type: ignore[misc]
    """HubOAuth with no "allow every hub user" fallback: without access scopes nobody is
    allowed (the library would otherwise admit any logged-in user)."""

    @property
    def hub_scopes(self) -> set[str]:
        scopes = set(self.hub_auth.access_scopes or ())
        if not scopes:
            raise web.HTTPError(403, "this session has no access scopes")
        return scopes


class DoorHandler(_Authenticated, websocket.WebSocketHandler):
    """The session's page and its WebSocket, which the client opens on the page's own path:
    both only for the session's owner."""

    upstream: websocket.WebSocketClientConnection | None = None

    def initialize(self, upstream: str, www: Path) -> None:
        self.upstream_url = upstream
        self.page = www / "index.html"

    def set_default_headers(self) -> None:
        # what the hub expects of a single-user server (it warns of an old one otherwise)
        self.set_header("X-JupyterHub-Version", jupyterhub.__version__)

    async def get(self, *args: Any, **kwargs: Any) -> None:
        upgrade = self.request.headers.get("Upgrade", "").lower() == "websocket"
        if self.current_user is None:
            if upgrade:
                raise web.HTTPError(403)  # a socket cannot follow a login redirect
            self.redirect(self.get_login_url())
            return
        if upgrade:
            await super().get(*args, **kwargs)
            return
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        await self.finish(self.page.read_bytes())

    # -- the WebSocket --------------------------------------------------------------------

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return SUBPROTOCOL if SUBPROTOCOL in subprotocols else None

    async def open(self, *args: Any, **kwargs: Any) -> None:
        try:
            self.upstream = await websocket.websocket_connect(
                self.upstream_url,
                subprotocols=[SUBPROTOCOL],
                on_message_callback=self._from_session,
                max_message_size=MAX_FRAME,
            )
        except OSError:
            self.close(1011, "the session's display is not answering")

    def _from_session(self, message: str | bytes | None) -> None:
        if message is None:  # xpra closed
            self.close()
            return
        if self.ws_connection is not None:
            self.write_message(message, binary=isinstance(message, bytes))

    async def on_message(self, message: str | bytes) -> None:
        if self.upstream is not None:
            await self.upstream.write_message(message, binary=isinstance(message, bytes))

    def on_close(self) -> None:
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None


def make_app(
    upstream: str, www: Path = XPRA_WWW, hub_auth: HubOAuth | None = None
) -> web.Application:
    """The door for the session whose prefix and OAuth client the environment names (the
    variables JupyterHub gives every single-user server). ``upstream`` is xpra's WebSocket,
    ``ws://127.0.0.1:<port>/``; ``www`` its HTML5 client's files."""
    auth = hub_auth or HubOAuth.instance()
    prefix = auth.base_url if auth.base_url.endswith("/") else auth.base_url + "/"
    door = {"upstream": upstream, "www": www}
    # Debian links some of the client's libraries (jQuery) to its shared copies
    static = {"path": str(www), "allowed_symlink_directory": [str(www), DEBIAN_JAVASCRIPT]}
    return web.Application(
        [
            (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
            (prefix, DoorHandler, door),
            (url_path_join(prefix, "index.html"), DoorHandler, door),
            (url_path_join(prefix, "(.+)"), web.StaticFileHandler, static),
        ],
        hub_auth=auth,
        # the door's own cookies (OAuth state, the token) last as long as the session
        cookie_secret=os.urandom(32),
        websocket_max_message_size=MAX_FRAME,
    )
