"""Login through JupyterHub's OAuth provider (authorization code with PKCE), behind a small
interface so the flow can be tested against a fake provider.

``OAuthClient`` is all the login views need: where to send the browser, how to swap the code
for a token, and whose token it is. ``HubOAuthClient`` implements it with
``jupyterhub.services.auth.HubOAuth`` (JupyterHub 6 or later, imported only when configured:
the queue runs standalone without JupyterHub installed). The hub says who someone is; the
control plane says what they may do: the hub's user name is looked up as a person's
``username``, and their roles and memberships come from the control plane as for any login.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import secrets
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlencode

from enclave.control.errors import IntegrationError
from enclave.settings import SettingsError

# What a JupyterHub service's environment holds when the hub runs it (``c.JupyterHub.services``).
HUB_ENVIRONMENT = ("JUPYTERHUB_API_TOKEN", "JUPYTERHUB_CLIENT_ID")


class OAuthClient(Protocol):
    """An OAuth 2 provider for the login views (authorization code flow with PKCE)."""

    def authorize_url(self, *, state: str, code_challenge: str) -> str:
        """Where to send the browser to log in; the provider comes back to the callback with
        ``state`` and a code."""
        ...

    def token_for_code(self, code: str, *, code_verifier: str) -> str:
        """Swap the callback's code (and the PKCE verifier) for an access token; raises
        AuthenticationFailed if the provider refuses, IntegrationError if it cannot be asked."""
        ...

    def username_for_token(self, token: str) -> str | None:
        """The user name the token belongs to, or None if the provider does not know it."""
        ...


def pkce_pair() -> tuple[str, str]:
    """A fresh PKCE ``(code_verifier, code_challenge)`` with method S256 (RFC 7636 §4)."""
    verifier = secrets.token_urlsafe(48)  # 64 characters, within the RFC's 43..128
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class HubOAuthClient:
    """``OAuthClient`` over JupyterHub's ``HubOAuth`` (configured from the service's
    environment: ``JUPYTERHUB_API_TOKEN``, ``JUPYTERHUB_CLIENT_ID``, ``JUPYTERHUB_API_URL``,
    ``JUPYTERHUB_OAUTH_CALLBACK_URL``...)."""

    def __init__(self, hub_auth: Any) -> None:
        self.hub_auth = hub_auth

    @classmethod
    def from_environment(cls) -> HubOAuthClient:
        """A client from the hub-provided environment; SettingsError if JupyterHub is not
        installed."""
        try:
            module = importlib.import_module("jupyterhub.services.auth")
        except ImportError as error:
            raise SettingsError(
                "JupyterHub OAuth is configured (JUPYTERHUB_CLIENT_ID) but the jupyterhub "
                "package is not installed"
            ) from error
        return cls(module.HubOAuth(pkce_enabled=True))

    def authorize_url(self, *, state: str, code_challenge: str) -> str:
        query = {
            "client_id": self.hub_auth.oauth_client_id,
            "redirect_uri": self.hub_auth.oauth_redirect_uri,
            "response_type": "code",
            "state": state,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        return f"{self.hub_auth.oauth_authorization_url}?{urlencode(query)}"

    def token_for_code(self, code: str, *, code_verifier: str) -> str:
        try:
            return str(self.hub_auth.token_for_code(code, code_verifier=code_verifier))
        except Exception as error:  # tornado's HTTPError and network errors alike
            raise IntegrationError(
                "JupyterHub did not accept the login; try again", rule="hub_oauth"
            ) from error

    def username_for_token(self, token: str) -> str | None:
        try:
            model = self.hub_auth.user_for_token(token, use_cache=False)
        except Exception as error:
            raise IntegrationError("JupyterHub could not be asked", rule="hub_oauth") from error
        name = model.get("name") if isinstance(model, Mapping) else None
        return str(name) if name else None


def configured(environ: Mapping[str, str]) -> OAuthClient | None:
    """The hub's OAuth client when the process runs as a JupyterHub service, else None."""
    if all(environ.get(name) for name in HUB_ENVIRONMENT):
        return HubOAuthClient.from_environment()
    return None
