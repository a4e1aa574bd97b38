"""``enclave serve``: refuses to start without a secret key or a current schema, and serves
the register and the API over real HTTP with waitress."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from enclave.cli import main
from enclave.control.db import make_engine, upgrade


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    for name in list(os.environ):
        if name.startswith("ENCLAVE_"):
            monkeypatch.delenv(name)
    values = {
        "ENCLAVE_DATA_DIR": str(tmp_path / "data"),
        "ENCLAVE_DATABASE_URL": f"sqlite:///{tmp_path / 'enclave.sqlite3'}",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    yield values


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_serve_refuses_without_a_secret_key(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--port", str(free_port())]) == 2
    assert "ENCLAVE_SECRET_KEY must be set" in capsys.readouterr().err


def test_serve_refuses_an_uninitialised_database(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENCLAVE_SECRET_KEY", "k" * 40)
    assert main(["serve", "--port", str(free_port())]) == 2
    assert "enclave admin init" in capsys.readouterr().err


def test_serve_answers_over_http(env: dict[str, str]) -> None:
    engine = make_engine(env["ENCLAVE_DATABASE_URL"])
    upgrade(engine)
    engine.dispose()
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "enclave.cli", "serve", "--port", str(port)],
        env={**os.environ, "ENCLAVE_SECRET_KEY": "k" * 40},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60  # a loaded CI machine starts it slowly
        while True:  # poll until the server listens (bounded), rather than sleep a guess
            try:
                with urllib.request.urlopen(f"{base}/register.json", timeout=5) as response:
                    assert json.load(response) == {"projects": []}
                    assert response.headers["X-Frame-Options"] == "DENY"
                break
            except OSError:
                assert process.poll() is None, process.communicate()[1]
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.05)
        request = urllib.request.Request(f"{base}/api/projects")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 401
        refused.value.close()  # an HTTPError holds the connection open
    finally:
        process.terminate()
        process.communicate(timeout=10)
