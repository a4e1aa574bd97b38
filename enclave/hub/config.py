"""JupyterHub's configuration, set from the enclave's ``Settings`` (``jupyterhub_config.py``
calls ``configure(c, settings, options)``).

The hub listens on a unix socket, which is mounted read-only into every sandbox and is the
sessions' only way out; configurable-http-proxy (5.3.0 or later, for ``http+unix`` targets)
serves the public port on loopback (nginx with TLS sits in front) and its API on a unix socket.
One named server per project; admins cannot enter users' servers; the control plane's
service token may manage users, groups, servers and tokens. The access enforcer, a managed
service, stops running servers whose access has lapsed (``enclave.hub.enforcer``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from enclave.hub.pixels import access_tier
from enclave.settings import Settings, SettingsError

CHP_VERSION = "5.3.0"
SERVICE = "enclave-control"
SERVICE_SCOPES = ["admin:users", "admin:groups", "admin:servers", "tokens"]
CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
ENFORCER = "access-enforcer"
ENFORCER_SCOPES = ["list:users", "read:servers", "delete:servers"]
QUEUE = "review-queue"  # the review queue's service name: served at /services/review-queue/
QUEUE_ACCESS = f"access:services!service={QUEUE}"
# the spawner of each ENCLAVE_HUB_BACKEND: both ask the same SessionPolicy
BACKENDS = {
    "bwrap": "enclave.hub.spawner.BwrapSpawner",
    "systemd": "enclave.hub.systemd.SystemdSpawner",
}


def unix_url(path: Path) -> str:
    """``http+unix://<percent-encoded path>``, as JupyterHub 6 and CHP 5.3 expect."""
    return "http+unix://" + quote(str(path), safe="")


def default_chp() -> str:
    """The proxy the Makefile installs into the venv (``<venv>/node_modules/.bin``), else the
    one on PATH."""
    local = Path(sys.prefix) / "node_modules" / ".bin" / "configurable-http-proxy"
    return str(local) if local.exists() else "configurable-http-proxy"


@dataclass(frozen=True)
class HubOptions:
    """The hub's own knobs (``ENCLAVE_HUB_*`` variables in ``load``).

    ``run_dir`` holds ``hub.sock``, ``proxy-api.sock`` and ``sessions/`` (keep it short: unix
    socket paths are limited to 107 bytes); ``state_dir`` the hub database, cookie secret and
    proxy pid file (default ``<data_dir>/hub``). ``python_environment`` is the sessions'
    environment (default: the hub's own). Limits: ``mem_limit`` in bytes, ``cpu_limit`` in
    cores, ``pids_limit`` in processes. ``idle_timeout`` seconds (0: no culler).
    ``enforce_interval``: seconds between the access enforcer's checks of running servers
    (positive: the enforcer always runs).
    ``cgroup_parent``: see ``BwrapSpawner.cgroup_parent``. ``queue_port`` (0: none) runs the
    review queue as a hub-managed service on that loopback port, its Flask secret key read
    from ``queue_secret_file``. ``backend`` runs the sessions under bubblewrap (``bwrap``,
    any host) or as transient systemd services (``systemd``, where systemd is PID 1).
    ``access_tier``: ``browser`` (JupyterLab in the researcher's browser) or ``pixels`` (the
    pixels-only tier, ``docs/pixels-only.md``).
    """

    run_dir: Path = Path("/run/enclave")
    state_dir: Path | None = None
    public_ip: str = "127.0.0.1"
    public_port: int = 8000
    python_environment: Path | None = None
    chp_command: str = field(default_factory=default_chp)
    authenticator_class: str = "enclave.hub.authenticator.EnclaveAuthenticator"
    cleanup_servers: bool = True
    named_server_limit: int = 10
    mem_limit: int = 4 * 1024**3
    cpu_limit: float = 1.0
    pids_limit: int = 512
    tier: str = "2"
    idle_timeout: int = 3600
    enforce_interval: int = 60
    cgroup_parent: str = "enclave-sessions"
    queue_port: int = 0
    queue_secret_file: Path | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)
    backend: str = "bwrap"
    access_tier: str = "browser"

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> HubOptions:
        """Read ``ENCLAVE_HUB_<FIELD>`` variables; SettingsError for a malformed number."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, kind in (
            ("run_dir", Path),
            ("state_dir", Path),
            ("public_ip", str),
            ("public_port", int),
            ("python_environment", Path),
            ("chp_command", str),
            ("authenticator_class", str),
            ("cleanup_servers", _bool),
            ("named_server_limit", int),
            ("mem_limit", int),
            ("cpu_limit", float),
            ("pids_limit", int),
            ("tier", str),
            ("idle_timeout", int),
            ("enforce_interval", int),
            ("cgroup_parent", str),
            ("queue_port", int),
            ("queue_secret_file", Path),
            ("backend", _backend),
            ("access_tier", access_tier),
        ):
            raw = env.get(f"ENCLAVE_HUB_{name.upper()}")
            if raw is None:
                continue
            try:
                values[name] = kind(raw)
            except ValueError as error:
                raise SettingsError(f"ENCLAVE_HUB_{name.upper()}: {error}") from error
        return cls(**values)


def _bool(raw: str) -> bool:
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise ValueError(f"expected true or false; got {raw!r}")


def _backend(raw: str) -> str:
    if raw not in BACKENDS:
        raise ValueError(f"expected one of {', '.join(sorted(BACKENDS))}; got {raw!r}")
    return raw


def configure(c: Any, settings: Settings, options: HubOptions) -> None:
    """Set JupyterHub's traits on the config object ``c``."""
    tier = _access_tier(options)  # before any trait is set
    state = options.state_dir or settings.data_dir / "hub"
    hub_socket = options.run_dir / "hub.sock"

    c.JupyterHub.bind_url = f"http://{options.public_ip}:{options.public_port}"
    c.JupyterHub.hub_bind_url = unix_url(hub_socket)
    c.JupyterHub.hub_connect_url = unix_url(hub_socket)
    c.JupyterHub.hub_socket_mode = 0o666  # every sandbox must connect; the API needs a token
    c.ConfigurableHTTPProxy.api_url = unix_url(options.run_dir / "proxy-api.sock")
    c.ConfigurableHTTPProxy.command = [options.chp_command]
    c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
    c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")

    c.JupyterHub.authenticator_class = options.authenticator_class
    c.ControlPlaneAccess.enclave_settings = settings
    c.ControlPlaneAccess.check_spawn = False  # BwrapSpawner asks the policy (audited once)
    c.JupyterHub.admin_access = False
    c.JupyterHub.allow_named_servers = True
    c.JupyterHub.named_server_limit_per_user = options.named_server_limit
    c.JupyterHub.cleanup_servers = options.cleanup_servers
    c.JupyterHub.redirect_to_server = False
    c.JupyterHub.oauth_require_pkce = True  # every OAuth client (the queue) must use PKCE

    services: list[dict[str, Any]] = []
    roles: list[dict[str, Any]] = []
    if settings.hub_api_token:
        services.append({"name": SERVICE, "api_token": settings.hub_api_token})
        roles.append({"name": SERVICE, "scopes": SERVICE_SCOPES, "services": [SERVICE]})
    if options.idle_timeout > 0:
        # the culler's tornado client cannot speak http+unix: it goes through the proxy
        api = f"http://{options.public_ip}:{options.public_port}/hub/api"
        services.append(
            {
                "name": "idle-culler",
                "command": [
                    sys.executable,
                    "-m",
                    "jupyterhub_idle_culler",
                    f"--timeout={options.idle_timeout}",
                    f"--url={api}",
                ],
            }
        )
        roles.append({"name": "idle-culler", "scopes": CULLER_SCOPES, "services": ["idle-culler"]})
    services.append(enforcer_service(settings, options))
    roles.append({"name": ENFORCER, "scopes": ENFORCER_SCOPES, "services": [ENFORCER]})
    if options.queue_port:
        services.append(queue_service(settings, options))
        # every hub user may reach the queue; the control plane says what they may do there
        roles.append({"name": "user", "scopes": ["self", QUEUE_ACCESS]})
    c.JupyterHub.services = services
    c.JupyterHub.load_roles = roles

    try:
        c.JupyterHub.spawner_class = BACKENDS[_backend(options.backend)]
    except ValueError as error:
        raise SettingsError(f"ENCLAVE_HUB_BACKEND: {error}") from error
    c.Spawner.default_url = "/lab"
    c.Spawner.disable_user_config = True
    c.Spawner.start_timeout = 60
    c.Spawner.http_timeout = 30
    c.Spawner.mem_limit = options.mem_limit
    c.Spawner.cpu_limit = options.cpu_limit
    c.Spawner.environment = dict(options.extra_env)
    spawner = c.SystemdSpawner if options.backend == "systemd" else c.BwrapSpawner
    spawner.enclave_data_dir = str(settings.data_dir)
    spawner.enclave_database_url = settings.database_url
    spawner.socket_root = str(options.run_dir / "sessions")
    spawner.pids_limit = options.pids_limit
    spawner.tier = options.tier
    spawner.access_tier = tier
    if options.backend == "bwrap":  # systemd places each unit in its own cgroup
        spawner.cgroup_parent = options.cgroup_parent
    if options.python_environment is not None:
        spawner.python_environment = str(options.python_environment)


def _access_tier(options: HubOptions) -> str:
    try:
        return access_tier(options.access_tier)
    except ValueError as error:
        raise SettingsError(f"ENCLAVE_HUB_ACCESS_TIER: {error}") from error


def enforcer_service(settings: Settings, options: HubOptions) -> dict[str, Any]:
    """The access enforcer (``python -m enclave.hub.enforcer``) as a hub-managed service: it
    reaches the hub's API on the hub's own socket (``JUPYTERHUB_API_URL``, set by the hub) with
    a token that may only list users, read their servers and stop them, and the control plane
    through its environment."""
    if options.enforce_interval <= 0:
        raise SettingsError(
            f"ENCLAVE_HUB_ENFORCE_INTERVAL must be a positive number of seconds; "
            f"got {options.enforce_interval}"
        )
    return {
        "name": ENFORCER,
        "command": [
            sys.executable,
            "-m",
            "enclave.hub.enforcer",
            f"--interval={options.enforce_interval}",
        ],
        "environment": {
            "ENCLAVE_DATA_DIR": str(settings.data_dir),
            "ENCLAVE_DATABASE_URL": settings.database_url,
        },
    }


def queue_service(settings: Settings, options: HubOptions) -> dict[str, Any]:
    """The review queue (with its outbox watcher and release worker) as a hub-managed service
    logging in through the hub's OAuth (PKCE, no confirmation page: it is our own service).
    Its environment is the hub's clean service environment plus where the control plane is;
    the secret key stays in its file."""
    if options.queue_secret_file is None:
        raise SettingsError("ENCLAVE_HUB_QUEUE_SECRET_FILE must be set with ENCLAVE_HUB_QUEUE_PORT")
    return {
        "name": QUEUE,
        "url": f"http://127.0.0.1:{options.queue_port}",
        "command": [
            sys.executable,
            "-m",
            "enclave.up.queue_service",
            f"--port={options.queue_port}",
            f"--secret-key-file={options.queue_secret_file}",
        ],
        "environment": {
            "ENCLAVE_DATA_DIR": str(settings.data_dir),
            "ENCLAVE_DATABASE_URL": settings.database_url,
        },
        "oauth_no_confirm": True,
        "oauth_client_allowed_scopes": [QUEUE_ACCESS],
    }


def prepare_dirs(settings: Settings, options: HubOptions) -> None:
    """Create the run and state directories: run_dir traversable by the session accounts
    (they reach the hub socket through it), state_dir private to root."""
    options.run_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    os.chmod(options.run_dir, 0o755)
    state = options.state_dir or settings.data_dir / "hub"
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
