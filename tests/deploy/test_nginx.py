"""deploy/nginx: accepted by ``nginx -t`` (with a self-signed certificate made here, paths
pointed into tmp_path; nginx is never started), TLS 1.2+ with forward-secret AEAD suites
only, HSTS, the allow-list included in every server, websockets passed to the proxy."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.deploy import tools
from tests.deploy.roles import DEPLOY

NGINX = DEPLOY / "nginx"


def _site(where: Path) -> Path:
    """The site and its includes in ``where``, pointing at files there, in a minimal
    nginx.conf; returns the nginx.conf."""
    tools.ensure("nginx", "openssl")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=enclave.test",
            "-keyout",
            str(where / "privkey.pem"),
            "-out",
            str(where / "fullchain.pem"),
        ],
        check=True,
        capture_output=True,
    )
    site = (NGINX / "enclave.conf").read_text()
    assert site.count("include /etc/nginx/enclave/") == 5
    (where / "enclave.conf").write_text(site.replace("/etc/nginx/enclave/", f"{where}/"))
    tls = (NGINX / "tls.conf").read_text()
    assert tls.count("/etc/enclave/tls/") == 2
    (where / "tls.conf").write_text(tls.replace("/etc/enclave/tls/", f"{where}/"))
    for name in ("allow-users.conf", "allow-admins.conf"):
        (where / name).write_text((NGINX / "allow-users.conf.example").read_text())
    conf = where / "nginx.conf"
    conf.write_text(
        f"pid {where}/nginx.pid;\nerror_log {where}/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  include {where}/enclave.conf;\n}}\n"
    )
    return conf


def _test(conf: Path) -> subprocess.CompletedProcess[str]:
    where = conf.parent
    return subprocess.run(
        ["nginx", "-t", "-p", f"{where}/", "-c", str(conf), "-e", f"{where}/error.log"],
        capture_output=True,
        text=True,
    )


def test_nginx_accepts_the_site(tmp_path: Path) -> None:
    done = _test(_site(tmp_path))
    assert done.returncode == 0 and "test is successful" in done.stderr, done.stderr


def test_nginx_would_refuse_a_broken_site(tmp_path: Path) -> None:
    """The check above can fail: a missing certificate is caught."""
    conf = _site(tmp_path)
    (tmp_path / "fullchain.pem").unlink()
    done = _test(conf)
    assert done.returncode != 0 and "fullchain.pem" in done.stderr


def test_tls_is_modern_and_hsts_is_sent() -> None:
    tls = (NGINX / "tls.conf").read_text()
    assert re.search(r"^ssl_protocols TLSv1\.2 TLSv1\.3;$", tls, re.M)
    (ciphers,) = re.findall(r"^ssl_ciphers (.+);$", tls, re.M)
    for suite in ciphers.split(":"):
        assert suite.startswith("ECDHE-") and ("GCM" in suite or "CHACHA20" in suite), suite
    assert re.search(
        r'^add_header Strict-Transport-Security "max-age=(\d+); includeSubDomains" always;$',
        tls,
        re.M,
    )
    assert int(re.findall(r"max-age=(\d+)", tls)[0]) >= 31536000
    assert "ssl_session_tickets off;" in tls


@pytest.mark.parametrize("port", ["80", "443", "8443"])
def test_every_server_is_behind_an_allow_list(port: str) -> None:
    servers = (NGINX / "enclave.conf").read_text().split("\nserver {")[1:]
    (server,) = [s for s in servers if re.search(rf"listen {port}\b", s)]
    expected = "allow-admins.conf" if port == "8443" else "allow-users.conf"
    assert f"include /etc/nginx/enclave/{expected};" in server
    if port != "80":
        assert "include /etc/nginx/enclave/tls.conf;" in server
    else:
        assert "return 301 https://" in server


def test_the_hub_proxy_gets_websockets_and_the_admin_web_its_own_port() -> None:
    site = (NGINX / "enclave.conf").read_text()
    assert "proxy_set_header Upgrade $http_upgrade;" in site
    assert "proxy_set_header Connection $enclave_connection_upgrade;" in site
    assert "server 127.0.0.1:8000;" in site and "server 127.0.0.1:8200;" in site
    example = (NGINX / "allow-users.conf.example").read_text().splitlines()
    assert example[-1] == "deny all;"
