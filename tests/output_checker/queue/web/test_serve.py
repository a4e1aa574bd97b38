"""``output-checker serve``: refuses to start without a secret key or with a schema that is
not current (one line, exit 2), and serves the queue over real HTTP with waitress, with the
release worker and the outbox watcher running beside it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from enclave.control.db import make_engine
from enclave.control.db import upgrade as upgrade_control
from output_checker.cli import main
from output_checker.queue.db import upgrade as upgrade_queue
from tests.enclave.control.web.test_serve import free_port


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    for name in list(os.environ):
        if name.startswith(("ENCLAVE_", "JUPYTERHUB_")):
            monkeypatch.delenv(name)
    values = {
        "ENCLAVE_DATA_DIR": str(tmp_path / "data"),
        "ENCLAVE_DATABASE_URL": f"sqlite:///{tmp_path / 'enclave.sqlite3'}",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    yield values


def test_serve_refuses_without_a_secret_key(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ENCLAVE_SECRET_KEY must be set" in err


def test_serve_refuses_a_database_without_the_queue_schema(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENCLAVE_SECRET_KEY", "k" * 40)
    assert main(["serve", "--port", str(free_port())]) == 2
    assert "enclave admin init" in capsys.readouterr().err
    engine = make_engine(env["ENCLAVE_DATABASE_URL"])
    upgrade_control(engine)  # the control plane's tables, but not the queue's
    engine.dispose()
    assert main(["serve", "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "queue schema" in err and "[schema]" in err


def test_serve_answers_over_http(env: dict[str, str]) -> None:
    engine = make_engine(env["ENCLAVE_DATABASE_URL"])
    upgrade_control(engine)
    upgrade_queue(engine)
    engine.dispose()
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "output_checker.cli", "serve", "--port", str(port)],
        env={**os.environ, "ENCLAVE_SECRET_KEY": "k" * 40},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90  # a loaded 2-core machine imports slowly
        while True:  # poll until the server listens (bounded), rather than sleep a guess
            try:
                with urllib.request.urlopen(f"{base}/login", timeout=5) as response:
                    assert "Log in" in response.read().decode()
                    assert response.headers["X-Frame-Options"] == "DENY"
                break
            except OSError:
                assert process.poll() is None, process.communicate()[1]
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.05)
        with urllib.request.urlopen(f"{base}/api/v1/openapi.json", timeout=5) as response:
            assert json.load(response)["info"]["title"] == "Output review queue API"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/api/v1/requests", timeout=5)
        assert refused.value.code == 401
        refused.value.close()  # an HTTPError holds the connection open
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
    assert "serving the review queue" in err and "Traceback" not in err
