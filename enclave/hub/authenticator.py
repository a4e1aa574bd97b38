"""JupyterHub authenticators backed by the control plane.

``EnclaveAuthenticator`` shows JupyterHub's own login form with its one-time-code field
(``request_otp``) and hands username, password and code to the control plane's login service
(``enclave.control.service.login_guard.login``): the same argon2 and TOTP checks, lockout and
audit as the admin web. ``EnclaveOIDCAuthenticator`` takes the identity from an OpenID Connect
provider (MFA happens there) and everything else from the control plane in the same way.

Both then ask ``enclave.hub.access`` three questions, which hold the rules of neither:

* at login (``check_allowed``): may this person use the hub at all? Nobody is allowed by
  configuration (``allow_all`` cannot be switched on); a refusal says why, to the person only;
* at login and every refresh (``authenticate``, ``refresh_user``, with ``manage_groups``): the
  ``project-<slug>`` groups whose access is in force. A refresh of someone no longer allowed
  returns False, so their next request needs a fresh login, which then says why;
* before every spawn (``pre_spawn_start``, after the forced ``refresh_pre_spawn``): may this
  server, named after its project, start? The control plane's audited ``start_session``
  decision, whose reason a refused spawn shows.

The control plane blocks (SQL, argon2), so every call runs on a worker thread.
"""

from __future__ import annotations

import asyncio
from typing import Any

from jupyterhub.auth import Authenticator  # type: ignore[import-untyped]
from jupyterhub.spawner import SpawnException  # type: ignore[import-untyped]
from oauthenticator.generic import GenericOAuthenticator  # type: ignore[import-untyped]
from tornado import web
from traitlets import Bool, Instance, TraitError, default, validate

from enclave.control.context import Context, open_context
from enclave.control.errors import AuthenticationFailed
from enclave.control.service import login_guard
from enclave.hub.access import HubAccess, email_for_login, hub_access, session_decision
from enclave.settings import Settings

# Where the OIDC authenticator keeps the control plane's groups inside auth_state.
GROUPS_KEY = "enclave_groups"


def _refused(access: HubAccess) -> web.HTTPError:
    # The person sees the sentence; the log gets only the rule, never an email.
    error = web.HTTPError(403, "hub login refused by the control plane (rule %s)", access.rule)
    error.jupyterhub_message = access.refusal  # type: ignore[attr-defined]
    return error


class ControlPlaneAccess(Authenticator):  # type: ignore[misc]
    """What both enclave authenticators share: the control plane's context, the login gate,
    group refresh and the pre-spawn decision. Not used on its own."""

    enclave_settings = Instance(
        Settings,
        allow_none=True,
        config=True,
        help="""The enclave's Settings (``enclave.settings.Settings``): which control-plane
        database to ask. Default: ``Settings.load()``, from ``ENCLAVE_`` environment variables
        and ``$ENCLAVE_CONFIG``.""",
    )

    check_spawn = Bool(
        True,
        config=True,
        help="""Ask the control plane before every spawn (audited as ``start_session``) and
        refuse with its reason. Switch off only when the spawner applies
        ``enclave.hub.policy.SessionPolicy`` itself (as the enclave's spawners do), so that
        each spawn is decided and audited once.""",
    )

    @default("manage_groups")
    def _default_manage_groups(self) -> bool:
        return True

    @default("refresh_pre_spawn")
    def _default_refresh_pre_spawn(self) -> bool:
        return True

    @default("auth_refresh_age")
    def _default_auth_refresh_age(self) -> int:
        # refresh_auth() skips every refresh, even a forced one, when this is 0.
        return 300

    @default("any_allow_config")
    def _default_any_allow_config(self) -> bool:
        return True  # the control plane is the allow config

    @validate("allow_all")
    def _never_allow_all(self, proposal: Any) -> bool:
        if proposal.value:
            raise TraitError("allow_all must stay False: the control plane decides who logs in")
        return False

    @validate("manage_groups")
    def _always_manage_groups(self, proposal: Any) -> bool:
        if not proposal.value:
            raise TraitError("manage_groups must stay True: groups come from the control plane")
        return True

    @validate("auth_refresh_age")
    def _positive_refresh_age(self, proposal: Any) -> int:
        if proposal.value <= 0:
            raise TraitError("auth_refresh_age must be positive, or no refresh ever happens")
        return int(proposal.value)

    _context: Context | None = None

    @property
    def context(self) -> Context:
        """The control plane's Context, opened on first use (on the event loop's thread)."""
        if self._context is None:
            self._context = open_context(self.enclave_settings or Settings.load())
        return self._context

    async def hub_access(self, username: str) -> HubAccess:
        """``enclave.hub.access.hub_access`` on a worker thread."""
        return await asyncio.to_thread(hub_access, self.context, username)

    async def check_allowed(self, username: str, authentication: Any = None) -> bool:
        """Allowed only when the control plane says so; otherwise a 403 saying why."""
        access = await self.hub_access(username)
        if not access.allowed:
            raise _refused(access)
        return True

    async def refresh_user(self, user: Any, handler: Any = None) -> bool | dict[str, Any]:
        """The groups in force now, or False (log in again) when access has lapsed."""
        refreshed = await super().refresh_user(user, handler)
        if refreshed is False:
            return False
        access = await self.hub_access(user.name)
        if not access.allowed:
            self.log.info("Hub access of %s lapsed (rule %s)", user.name, access.rule)
            if handler is not None and not hasattr(handler, "_token_authenticated"):
                # JupyterHub 6.1.1's refresh_auth() reads this attribute without a default
                # after a False refresh; it is only ever set (True) for token-authenticated
                # requests. Without it a cookie request would fail with a 500 instead of
                # requiring a fresh login.
                handler._token_authenticated = False
            return False
        model: dict[str, Any] = refreshed if isinstance(refreshed, dict) else {"name": user.name}
        model["groups"] = list(access.groups)
        return model

    async def pre_spawn_start(self, user: Any, spawner: Any) -> None:
        """Refuse the spawn, with the control plane's reason, unless a session may start."""
        if not self.check_spawn:
            return
        decision = await asyncio.to_thread(session_decision, self.context, user.name, spawner.name)
        if not decision.allowed:
            raise SpawnException(
                decision.message,
                reason="enclave_policy",
                log_message=f"spawn refused by the control plane (rule {decision.rule})",
                status_code=403,
            )


def _password_login(ctx: Context, login: str, password: str, code: str) -> str | None:
    try:
        person = login_guard.login(ctx, email_for_login(ctx, login), password, code)
    except AuthenticationFailed:
        return None
    return person.username


class EnclaveAuthenticator(ControlPlaneAccess):
    """Username (or email), password and authenticator-app code, checked by the control plane.

    The login form is JupyterHub's own, with its one-time-code field switched on; failed
    attempts count towards the control plane's lockout and are audited there.
    """

    @default("request_otp")
    def _default_request_otp(self) -> bool:
        return True

    @default("otp_prompt")
    def _default_otp_prompt(self) -> str:
        return "Code from your authenticator app:"

    async def authenticate(self, handler: Any, data: dict[str, str]) -> dict[str, Any] | None:
        """``{"name", "groups"}`` for the right credentials; None (a generic refusal) else."""
        username = await asyncio.to_thread(
            _password_login,
            self.context,
            data.get("username", ""),
            data.get("password", ""),
            data.get("otp", ""),
        )
        if username is None:
            return None
        access = await self.hub_access(username)
        return {"name": username, "groups": list(access.groups)}


class EnclaveOIDCAuthenticator(ControlPlaneAccess, GenericOAuthenticator):  # type: ignore[misc]
    """Production login through an OpenID Connect provider (configure it as
    ``GenericOAuthenticator``: ``oauth_callback_url``, ``client_id``, ``authorize_url``,
    ``token_url``, ``userdata_url``, ``username_claim``); the claim must give the control
    plane's username. MFA is the provider's job. Groups and the login gate come from the
    control plane exactly as for ``EnclaveAuthenticator``; ``allowed_users``,
    ``allowed_groups`` and ``admin_groups`` grant nothing here."""

    @default("login_service")
    def _default_login_service(self) -> str:
        return "the enclave's identity provider"

    async def update_auth_model(self, auth_model: dict[str, Any]) -> dict[str, Any]:
        access = await self.hub_access(auth_model["name"])
        auth_state = auth_model.get("auth_state") or {}
        auth_state[GROUPS_KEY] = list(access.groups)
        auth_model["auth_state"] = auth_state
        return auth_model

    async def get_user_groups(self, auth_state: dict[str, Any]) -> set[str]:
        return set((auth_state or {}).get(GROUPS_KEY) or ())

    async def check_allowed(self, username: str, authentication: Any = None) -> bool:
        """Audit the provider's login in the control plane (refused for an unknown,
        suspended or sanctioned account, or a lapsed organisation), then apply the shared
        gate."""
        try:
            await asyncio.to_thread(
                login_guard.vouched_login_in_standing, self.context, username, method="oidc"
            )
        except AuthenticationFailed as error:
            refusal = HubAccess(username, (), error.message, error.rule)
            raise _refused(refusal) from None
        return await super().check_allowed(username, authentication)
