"""Hardening of the researcher's single-user server (JupyterLab under jupyterhub-singleuser).

Server side, through ``jupyter_server_config.py`` in the sandbox environment's
``etc/jupyter``: ``EnclaveAuthorizer`` refuses nbconvert, terminals and the raw-file routes
(``/files/``, ``/view/``) with 403; terminals are switched off (404); each request body is
capped, and ``EnclaveContentsManager`` refuses chunked uploads, so nothing larger than the cap
comes in through the browser. In the browser, ``labconfig/page_config.json`` disables and locks
the download, export, open-in-a-browser-tab, copy-output, terminal and extension-manager
plugins, and ``overrides.json`` hides the upload button.

``install_hardening(prefix)`` writes all of it into an environment, which the sandbox mounts
read-only, so that a researcher cannot undo it. What this does and does not stop is in
``docs/security.md``: the browser still receives every byte it renders.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jupyter_server.auth.authorizer import Authorizer
from jupyter_server.base.handlers import AuthenticatedFileHandler
from jupyter_server.files.handlers import FilesHandler
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from jupyter_server.view.handlers import ViewHandler
from jupyterhub.singleuser.extension import JupyterHubAuthorizer  # type: ignore[import-untyped]
from tornado import web

MIB = 1024 * 1024
MAX_BODY_SIZE = 2 * MIB

# jupyter-server auth resources refused outright.
BLOCKED_RESOURCES = frozenset({"nbconvert", "terminals"})
# Handlers that serve a file's raw bytes as a download or browser tab (contents resource).
BLOCKED_HANDLERS = (FilesHandler, AuthenticatedFileHandler, ViewHandler)

# JupyterLab 4.6 plugin ids (Notebook 7 shares them) disabled and locked in the browser.
LOCKED_PLUGINS = (
    "@jupyterlab/docmanager-extension:download",
    "@jupyterlab/filebrowser-extension:download",
    "@jupyterlab/docmanager-extension:open-browser-tab",
    "@jupyterlab/filebrowser-extension:open-browser-tab",
    "@jupyterlab/notebook-extension:export",
    "@jupyterlab/notebook-extension:copy-output",
    "@jupyterlab/terminal-extension:plugin",
    "@jupyterlab/extensionmanager-extension:plugin",
)

# Settings defaults: the file browser's upload button is hidden.
OVERRIDES: dict[str, Any] = {
    "@jupyterlab/filebrowser-extension:widget": {
        "toolbar": [{"name": "uploader", "disabled": True}]
    }
}


def _refused(log: Any, handler: Any, action: str, resource: str) -> bool:
    """Is this one of the requests the enclave refuses whoever asks (logged if so)?"""
    if resource in BLOCKED_RESOURCES or isinstance(handler, BLOCKED_HANDLERS):
        # No path or user in the log line: it would name files of the project.
        log.warning(
            "Refused by the enclave: %s on %s (%s)", action, resource, type(handler).__name__
        )
        return True
    return False


class EnclaveAuthorizer(JupyterHubAuthorizer):  # type: ignore[misc]
    """JupyterHub's scope check, plus a refusal (403) of nbconvert, terminals and the raw-file
    handlers, whatever the user's scopes."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        if _refused(self.log, handler, action, resource):
            return False
        return bool(super().is_authorized(handler, user, action, resource))


class PixelsAuthorizer(Authorizer):
    """The pixels-only tier's inner Lab (no hub in front of it: a token on the sandbox's own
    loopback, ``enclave.hub.pixels_session``) refuses the same requests."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return not _refused(self.log, handler, action, resource)


class EnclaveContentsManager(AsyncLargeFileManager):
    """The default contents manager without chunked uploads: each upload must fit in one
    request, so ``ServerApp.max_body_size`` caps what can come in through the browser."""

    async def save(self, model: dict[str, Any], path: str = "") -> dict[str, Any]:
        if model.get("chunk") is not None:
            raise web.HTTPError(413, "uploads larger than one request are refused in the enclave")
        saved: dict[str, Any] = await super().save(model, path)  # type: ignore[no-untyped-call]
        return saved


def server_config(prefix: Path, *, max_body_size: int = MAX_BODY_SIZE) -> str:
    """The text of ``jupyter_server_config.py`` for the environment at ``prefix``."""
    lab_settings = prefix / "share" / "jupyter" / "lab" / "settings"
    lines = [
        "# Written by enclave.hub.singleuser.install_hardening; read-only in the sandbox.",
        "# The spawner also sets JUPYTERHUB_DISABLE_USER_CONFIG=1 (Spawner.disable_user_config).",
        "import os",
        "",
        "# Environment-level config (this directory's labconfig) wins over the user's own",
        "# ~/.jupyter, which is writable inside the sandbox.",
        'os.environ["JUPYTER_PREFER_ENV_PATH"] = "1"',
        "",
        'c.ServerApp.authorizer_class = "enclave.hub.singleuser.EnclaveAuthorizer"',
        'c.ServerApp.contents_manager_class = "enclave.hub.singleuser.EnclaveContentsManager"',
        "c.ServerApp.terminals_enabled = False",
        f"c.ServerApp.max_body_size = {int(max_body_size)}",
        "c.ContentsManager.allow_hidden = False",
        'c.LabApp.extension_manager = "readonly"',
        "c.LabApp.lock_all_plugins = True",
        "c.LabApp.news_url = None",
        'c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"',
        f"c.LabApp.app_settings_dir = {str(lab_settings)!r}",
        "",
    ]
    return "\n".join(lines)


def page_config() -> dict[str, Any]:
    """``labconfig/page_config.json``: the plugins disabled and locked."""
    return {
        "disabledExtensions": {plugin: True for plugin in LOCKED_PLUGINS},
        "lockedExtensions": {plugin: True for plugin in LOCKED_PLUGINS},
    }


def install_hardening(prefix: Path, *, max_body_size: int = MAX_BODY_SIZE) -> list[Path]:
    """Write the server config, the lab page config and the settings overrides into the
    environment at ``prefix`` (its ``sys.prefix``); returns the files written.

    Overwrites earlier copies of these files and touches nothing else. Run it when the
    environment is built, before it is made read-only.
    """
    etc = prefix / "etc" / "jupyter"
    files = {
        etc / "jupyter_server_config.py": server_config(prefix, max_body_size=max_body_size),
        etc / "labconfig" / "page_config.json": json.dumps(page_config(), indent=2) + "\n",
        prefix / "share" / "jupyter" / "lab" / "settings" / "overrides.json": (
            json.dumps(OVERRIDES, indent=2) + "\n"
        ),
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(files)
