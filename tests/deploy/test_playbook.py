"""The playbook applied for real, through Ansible's chroot connection, to a throwaway Debian
bookworm root (never to this machine: no service starts there and the firewall is never
loaded), then applied again with nothing changed.

The enclave's Python package is installed for real, offline, from a wheelhouse built on this
machine (chroot.wheelhouse, mounted into the root: enclave_wheelhouse), and the migrations run
against a SQLite database inside the root, since PostgreSQL does not run there (its roles and
privileges are therefore not applied here: test_postgresql_privileges does that against a real
server). NodeSource's repository is switched off too, as this machine cannot reach it (Node 20
comes from the npm registry instead, enclave_nodejs_source: npm-registry). Every other task
runs: packages, accounts, sysctl, nftables, PostgreSQL's configuration and SQL, the virtualenv,
Node 20 and configurable-http-proxy, settings and secrets, the systemd units, nginx (checked by
``nginx -t`` inside the root), the backup timer.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name, parse_wheel_filename

from tests.deploy.chroot import WHEELHOUSE, bookworm_root, wheelhouse
from tests.deploy.roles import ANSIBLE, DEPLOY, ROLES, VENV_BIN

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("deploy-chroot")]

RECAP = re.compile(r"ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")
UNITS = ("enclave-hub.service", "enclave-queue.service", "enclave-admin.service")
VENV = "/opt/enclave/venv"
PLATFORM_ENCRYPTION = "test volumes: encrypted by the (imaginary) provider with a customer key"
# inside the root: PostgreSQL does not run there, so the migrations run against SQLite
DATABASE = "/var/lib/enclave/enclave.sqlite3"
MIGRATION_ENV = {
    "ENCLAVE_CONFIG": "/etc/enclave/enclave.toml",
    "ENCLAVE_DATABASE_URL": f"sqlite:///{DATABASE}",
    "ENCLAVE_HUB_URL": "",
}


@dataclass(frozen=True)
class Run:
    output: str
    ok: int
    changed: int
    failed: int


@dataclass(frozen=True)
class Applied:
    root: Path
    wheels: Path  # the wheelhouse the enclave was installed from
    first: Run
    second: Run


def _tls(where: Path) -> tuple[Path, Path]:
    certificate, key = where / "fullchain.pem", where / "privkey.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=enclave.test",
            "-keyout",
            str(key),
            "-out",
            str(certificate),
        ],
        check=True,
        capture_output=True,
    )
    return certificate, key


def _play(inventory: Path) -> Run:
    env = {
        # this machine's pip settings (its own find-links, indexes) stay out of the root
        **{name: value for name, value in os.environ.items() if not name.startswith("PIP_")},
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
        "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(inventory.parent / "ansible-tmp"),
    }
    done = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), "site.yml"],
        cwd=ANSIBLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    found = RECAP.search(done.stdout)
    assert done.returncode == 0 and found, done.stdout[-6000:] + done.stderr[-3000:]
    ok, changed, _, failed = (int(n) for n in found.groups())
    return Run(done.stdout, ok, changed, failed)


def _apply_twice(work: Path) -> Applied:
    certificate, key = _tls(work)
    wheels = wheelhouse()
    with bookworm_root(work / "root", wheels) as root:
        host = {
            "ansible_connection": "community.general.chroot",
            "ansible_python_interpreter": "/usr/bin/python3",
            "enclave_manage_services": False,
            "enclave_wheelhouse": str(WHEELHOUSE),
            "enclave_migrate": True,
            "enclave_database_url": MIGRATION_ENV["ENCLAVE_DATABASE_URL"],
            "enclave_database_owner_url": MIGRATION_ENV["ENCLAVE_DATABASE_URL"],
            # deb.nodesource.com is out of this machine's reach; the npm registry is not
            "enclave_nodejs_source": "npm-registry",
            "nginx_tls_certificate": str(certificate),
            "nginx_tls_key": str(key),
            "enclave_allowed_networks": ["192.0.2.0/24", "2001:db8:10::/48"],
            "enclave_admin_networks": ["198.51.100.16/28"],
            "firewall_identity_provider": ["203.0.113.10/32"],
            "firewall_package_mirror": ["203.0.113.20/32"],
            "firewall_dns_servers": ["203.0.113.53"],
            # a chroot has no disk of its own to format: the LUKS path is test_encryption's
            "encryption_mode": "platform",
            "encryption_platform_statement": PLATFORM_ENCRYPTION,
        }
        inventory = work / "inventory.json"
        inventory.write_text(json.dumps({"all": {"hosts": {str(root): host}}}))
        return Applied(root, wheels, _play(inventory), _play(inventory))


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Applied:
    """The playbook applied twice, once for the module (its tests share a worker)."""
    return _apply_twice(tmp_path_factory.mktemp("playbook"))


def test_the_playbook_applies_and_a_second_run_changes_nothing(applied: Applied) -> None:
    assert applied.first.failed == 0 and applied.first.changed > 20
    for task in ("Install the enclave and its dependencies", "Migrate the database"):
        assert re.search(rf"TASK \[enclave : {task}[^\n]*\n(changed|ok):", applied.first.output)
    changed = [line for line in applied.second.output.splitlines() if line.startswith("changed:")]
    assert applied.second.changed == 0, changed


def test_the_rendered_ruleset_passes_nft_check_and_singles_out_session_accounts(
    applied: Applied,
) -> None:
    ruleset = applied.root / "etc/nftables.conf"
    # -c: parsed and checked by the kernel's netlink, never loaded into this machine
    subprocess.run(["nft", "-c", "-f", str(ruleset)], check=True, capture_output=True)
    text = ruleset.read_text()
    assert "meta skuid 200000-299999 counter reject" in text
    assert "elements = { 203.0.113.10/32 }" in text  # the identity provider
    assert "elements = { 192.0.2.0/24 }" in text and "2001:db8:10::/48" in text
    assert re.search(
        r"chain output \{\n\s+type filter hook output priority filter; policy drop;", text
    )
    assert (applied.root / "etc/systemd/system/sysinit.target.wants/nftables.service").is_symlink()


def test_session_accounts_get_uids_from_the_range_the_firewall_matches(applied: Applied) -> None:
    subprocess.run(
        [
            "chroot",
            str(applied.root),
            "/usr/local/sbin/enclave-useradd",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            "--user-group",
            "enc-probe",
        ],
        check=True,
        capture_output=True,
    )
    ids = subprocess.run(
        ["chroot", str(applied.root), "id", "enc-probe"], check=True, capture_output=True, text=True
    ).stdout
    uid, gid = (int(n) for n in re.findall(r"[ug]id=(\d+)", ids))
    assert 200000 <= uid <= 299999 and 200000 <= gid <= 299999


def test_units_are_installed_unchanged_and_enabled(applied: Applied) -> None:
    system = applied.root / "etc/systemd/system"
    for unit in (*UNITS, "enclave-workers.service"):
        assert (system / unit).read_text() == (DEPLOY / "systemd" / unit).read_text()
        assert (system / "multi-user.target.wants" / unit).is_symlink()
    assert (system / "timers.target.wants/enclave-backup.timer").is_symlink()
    for unit in ("enclave-alerts.service", "enclave-alerts.timer"):
        assert (system / unit).read_text() == (DEPLOY / "systemd" / unit).read_text()
    assert (system / "timers.target.wants/enclave-alerts.timer").is_symlink()
    assert not (system / "multi-user.target.wants/enclave-alerts.service").exists()
    backup = (system / "enclave-backup.service").read_text()
    assert "/opt/enclave/venv/bin/enclave backup create --to" in backup


def test_secrets_are_generated_on_the_host_and_readable_by_the_services_only(
    applied: Applied,
) -> None:
    secrets = applied.root / "etc/enclave/secrets.env"
    mode = secrets.stat()
    assert stat.S_IMODE(mode.st_mode) == 0o640 and mode.st_uid == 0
    group = subprocess.run(
        ["chroot", str(applied.root), "getent", "group", "enclave"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert mode.st_gid == int(group.split(":")[2])
    assert re.fullmatch(
        r"ENCLAVE_SECRET_KEY=[0-9a-f]{64}\nENCLAVE_HUB_API_TOKEN=[0-9a-f]{64}\n",
        secrets.read_text(),
    )


def test_node_20_and_the_proxy_are_installed(applied: Applied) -> None:
    version = subprocess.run(
        ["chroot", str(applied.root), "node", "--version"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert version.startswith("v20.")
    chp = applied.root / "opt/enclave/proxy/node_modules/configurable-http-proxy/package.json"
    assert json.loads(chp.read_text())["version"] == "5.3.0"
    assert (applied.root / "opt/enclave/venv/bin/python").exists()


def test_postgresql_accepts_only_peer_logins_over_its_socket(applied: Applied) -> None:
    main = applied.root / "etc/postgresql/15/main"
    assert "listen_addresses = ''" in (main / "conf.d/enclave.conf").read_text()
    hba = [
        line.split()
        for line in (main / "pg_hba.conf").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert all(fields[-1] in ("peer", "reject", "map=enclave") for fields in hba)
    assert hba[-2:] == [
        ["host", "all", "all", "0.0.0.0/0", "reject"],
        ["host", "all", "all", "::/0", "reject"],
    ]


def test_nginx_has_the_site_the_allow_lists_and_no_default_site(applied: Applied) -> None:
    nginx = applied.root / "etc/nginx"
    assert (nginx / "conf.d/enclave.conf").read_text() == (
        DEPLOY / "nginx/enclave.conf"
    ).read_text()
    assert (nginx / "enclave/allow-users.conf").read_text().splitlines()[-3:] == [
        "allow 2001:db8:10::/48;",
        "# Nobody else, even with valid credentials.",
        "deny all;",
    ]
    assert not (nginx / "sites-enabled/default").exists()
    key = applied.root / "etc/enclave/tls/privkey.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def _in_root(applied: Applied, *argv: str, env: dict[str, str] | None = None) -> str:
    path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    clean = {"PATH": path, "LANG": "C.UTF-8", **(env or {})}
    done = subprocess.run(
        ["chroot", str(applied.root), *argv], env=clean, capture_output=True, text=True
    )
    assert done.returncode == 0, f"{argv}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done.stdout


def test_the_enclave_is_installed_from_the_wheelhouse_and_its_commands_run(
    applied: Applied,
) -> None:
    assert "usage: enclave" in _in_root(applied, f"{VENV}/bin/enclave", "--help")
    assert "usage: output-checker" in _in_root(applied, f"{VENV}/bin/output-checker", "--help")
    assert _in_root(applied, f"{VENV}/bin/jupyterhub", "--version").startswith("6.")
    assert "gunicorn" in _in_root(applied, f"{VENV}/bin/gunicorn", "--version")
    where = _in_root(
        applied,
        f"{VENV}/bin/python",
        "-c",
        "import enclave, output_checker; print(enclave.__file__, output_checker.__file__)",
    )
    # a real installation in the virtualenv, not a link back to this checkout
    assert where.count(f"{VENV}/lib/python3.11/site-packages/") == 2, where
    frozen = _in_root(applied, f"{VENV}/bin/python", "-m", "pip", "list", "--format=freeze")
    installed = {
        (canonicalize_name(name), version)
        for name, _, version in (line.partition("==") for line in frozen.split())
    }
    offered = {parse_wheel_filename(w.name)[:2] for w in applied.wheels.glob("*.whl")}
    # exactly the wheelhouse's releases, nothing from an index
    assert {(name, str(version)) for name, version in offered} <= installed
    extra = {name for name, _ in installed} - {name for name, _ in offered}
    assert extra <= {"pip", "setuptools"}, extra
    # the analysis guide comes with the package, where sessions are shown it (SATRE 2.1.05)
    guide = applied.root / VENV.lstrip("/") / "share/enclave/analysis.md"
    assert guide.read_text() == (DEPLOY.parent / "docs" / "analysis.md").read_text()


def test_the_migrations_ran_and_the_schemas_are_at_their_newest_revision(
    applied: Applied,
) -> None:
    assert (applied.root / DATABASE.lstrip("/")).stat().st_size > 0
    check = (ROLES / "enclave/files/revisions.py").read_text()
    assert _in_root(applied, f"{VENV}/bin/python", "-c", check, env=MIGRATION_ENV) == "current\n"
    again = _in_root(applied, f"{VENV}/bin/output-checker", "init", env=MIGRATION_ENV)
    assert again.startswith("queue schema already at revision "), again


def test_the_hub_configuration_loads_in_the_installed_enclave(applied: Applied) -> None:
    env = dict(MIGRATION_ENV)
    for name in ("hub.env", "secrets.env"):
        for line in (applied.root / "etc/enclave" / name).read_text().splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                env[key] = value
    loaded = _in_root(
        applied,
        f"{VENV}/bin/python",
        "-c",
        "from traitlets.config import Config\n"
        "c = Config()\n"
        "source = open('/etc/enclave/jupyterhub_config.py').read()\n"
        "exec(compile(source, 'jupyterhub_config.py', 'exec'), {'get_config': lambda: c})\n"
        "print(c.BwrapSpawner.useradd_command, c.JupyterHub.bind_url)\n",
        env=env,
    )
    assert loaded == "/usr/local/sbin/enclave-useradd http://127.0.0.1:8000\n"


def test_the_platform_encryption_statement_is_kept_for_the_auditors(applied: Applied) -> None:
    statement = applied.root / "etc/enclave/encryption-at-rest"
    assert statement.read_text().strip() == PLATFORM_ENCRYPTION
    assert stat.S_IMODE(statement.stat().st_mode) == 0o640
