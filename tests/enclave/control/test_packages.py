"""Software ingress (SATRE 2.1.12-13): a researcher asks for a package, an admin other than
the requester approves it with a wheel fetched on the host, the wheel lands in the wheelhouse
with its sha256 in a PEP 503 index, and a real, offline pip installs it from there and from
nowhere else. Every step and every refusal is audited."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from enclave.cli import main
from enclave.control import audit, wheelhouse
from enclave.control.context import Context
from enclave.control.errors import ControlError
from enclave.control.rules import PERMISSIONS, Action, ProjectState, Role
from enclave.control.service import packages, people
from tests.enclave.control.factories import World, audit_tail, counts, make_project

SLUG = "study"
WHY = "mixed models for the cohort analysis"


def make_wheel(folder: Path, name: str, version: str = "1.0", *, filename: str = "") -> Path:
    """A minimal valid wheel of a pure-Python package ``name`` with one module."""
    module = name.replace("-", "_")
    dist = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": f"WHO = {name!r}\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = "\n".join(record) + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / (filename or f"{module}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


def pip_install(ctx: Context, tmp_path: Path, name: str) -> subprocess.CompletedProcess[str]:
    """The venv's pip, configured only by the wheelhouse's pip.conf pointed at its host path,
    installing into a fresh target: no network is ever tried (a file:// index only)."""
    root = packages.wheelhouse_dir(ctx.data_dir)
    conf = tmp_path / "pip.conf"
    conf.write_text(wheelhouse.pip_conf(str(root)))
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "PIP_CONFIG_FILE": str(conf),
        "PIP_NO_CACHE_DIR": "1",
    }
    target = tmp_path / "site"
    return subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--target", str(target), name],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def outsider(ctx: Context, world: World) -> str:
    """A researcher who is a member of no project."""
    email = "out@example.org"
    people.create_person(
        ctx, world.admin, email=email, name="Out", organisation="O", roles=["researcher"]
    )
    return email


@pytest.fixture
def project(ctx: Context, world: World) -> str:
    make_project(ctx, world, SLUG)
    return SLUG


def test_request_approve_index_and_install_offline(
    ctx: Context, world: World, project: str, tmp_path: Path
) -> None:
    asked = packages.request_package(ctx, world.researcher, project, "Tiny_Pkg", why=WHY)
    assert (asked.state, asked.name, asked.project) == ("requested", "tiny-pkg", SLUG)
    wheel = make_wheel(tmp_path / "downloads", "tiny-pkg")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()

    done = packages.decide_package(ctx, world.admin, asked.uuid, approve=True, wheels=[wheel])

    assert done.state == "approved" and done.decided_by == world.admin
    assert done.wheels == [{"filename": wheel.name, "sha256": digest}]
    root = packages.wheelhouse_dir(ctx.data_dir)
    assert (root / "wheels" / wheel.name).read_bytes() == wheel.read_bytes()
    assert not [p for p in (root / "wheels").iterdir() if p.name.startswith(".")]
    page = (root / "simple" / "tiny-pkg" / "index.html").read_text()
    assert f'href="../../wheels/{wheel.name}#sha256={digest}"' in page
    assert 'href="tiny-pkg/"' in (root / "simple" / "index.html").read_text()
    assert "index-url = file:///opt/enclave/packages/simple/" in (root / "pip.conf").read_text()

    installed = pip_install(ctx, tmp_path, "tiny-pkg")
    assert installed.returncode == 0, installed.stderr
    assert (tmp_path / "site" / "tiny_pkg" / "__init__.py").read_text() == "WHO = 'tiny-pkg'\n"
    assert [(e.action, e.outcome) for e in audit.records(ctx.engine)[-2:]] == [
        ("request_package", "ok"),
        ("decide_package", "ok"),
    ]
    assert audit.records(ctx.engine)[-1].detail["wheels"] == done.wheels
    assert audit.verify(ctx.engine).ok


def test_pip_cannot_install_what_is_not_in_the_wheelhouse(
    ctx: Context, world: World, project: str, tmp_path: Path
) -> None:
    asked = packages.request_package(ctx, world.researcher, project, "tiny-pkg", why=WHY)
    wheel = make_wheel(tmp_path / "downloads", "tiny-pkg")
    packages.decide_package(ctx, world.admin, asked.uuid, approve=True, wheels=[wheel])
    # a wheel dropped beside the approved ones without approval is not in the index either
    make_wheel(packages.wheelhouse_dir(ctx.data_dir) / "wheels", "sneaky")

    for name in ("requests", "sneaky"):
        refused = pip_install(ctx, tmp_path, name)
        assert refused.returncode != 0
        assert "No matching distribution found" in refused.stderr
    assert not (tmp_path / "site" / "sneaky").exists()


def test_a_wheel_changed_after_approval_drops_out_of_the_index(
    ctx: Context, world: World, project: str, tmp_path: Path
) -> None:
    asked = packages.request_package(ctx, world.researcher, project, "tiny-pkg", why=WHY)
    wheel = make_wheel(tmp_path / "downloads", "tiny-pkg")
    packages.decide_package(ctx, world.admin, asked.uuid, approve=True, wheels=[wheel])
    stored = packages.wheelhouse_dir(ctx.data_dir) / "wheels" / wheel.name
    os.chmod(stored, 0o644)
    stored.write_bytes(make_wheel(tmp_path / "evil", "tiny-pkg", "1.0").read_bytes() + b"x")

    assert packages.wheelhouse_index(ctx) == {}
    assert pip_install(ctx, tmp_path, "tiny-pkg").returncode != 0


def test_a_non_member_cannot_request(ctx: Context, world: World, project: str) -> None:
    outsider(ctx, world)
    before = counts(ctx)
    with pytest.raises(ControlError) as refused:
        packages.request_package(ctx, "out@example.org", project, "tiny-pkg", why=WHY)
    assert refused.value.rule == "not_a_member"
    assert counts(ctx) == before
    assert audit_tail(ctx) == [("request_package", "refused", "not_a_member")]


def test_a_researcher_cannot_approve_their_own_request(
    ctx: Context, world: World, project: str, tmp_path: Path
) -> None:
    asked = packages.request_package(ctx, world.researcher, project, "tiny-pkg", why=WHY)
    wheel = make_wheel(tmp_path / "downloads", "tiny-pkg")
    with pytest.raises(ControlError) as refused:
        packages.decide_package(ctx, world.researcher, asked.uuid, approve=True, wheels=[wheel])
    assert refused.value.rule == "role"
    assert audit_tail(ctx) == [("decide_package", "refused", "role")]
    # nor may an admin who is also the project's researcher decide on their own request
    people.set_roles(ctx, world.admin, world.researcher, ["researcher", "admin"])
    with pytest.raises(ControlError) as own:
        packages.decide_package(ctx, world.researcher, asked.uuid, approve=True, wheels=[wheel])
    assert own.value.rule == "own_request"
    assert audit_tail(ctx) == [("decide_package", "refused", "own_request")]
    assert not (packages.wheelhouse_dir(ctx.data_dir) / "wheels" / wheel.name).exists()
    [pending] = packages.list_packages(ctx, world.admin)
    assert pending.state == "requested"


@pytest.mark.parametrize(
    ("name", "filename", "rule"),
    [
        ("other-pkg", "", "wrong_package"),  # a wheel of another project
        ("other-pkg", "tiny_pkg-1.0-py3-none-any.whl", "wrong_package"),  # renamed
        ("tiny-pkg", "tiny_pkg-1.0.zip", "not_a_wheel"),
    ],
)
def test_a_wheel_that_is_not_the_requested_package_is_refused(
    ctx: Context, world: World, project: str, tmp_path: Path, name: str, filename: str, rule: str
) -> None:
    asked = packages.request_package(ctx, world.researcher, project, "tiny-pkg", why=WHY)
    wheel = make_wheel(tmp_path / "downloads", name, filename=filename)
    before = counts(ctx)
    with pytest.raises(ControlError) as refused:
        packages.decide_package(ctx, world.admin, asked.uuid, approve=True, wheels=[wheel])
    assert refused.value.rule == rule
    assert counts(ctx) == before
    assert audit_tail(ctx) == [("decide_package", "refused", rule)]
    assert not (packages.wheelhouse_dir(ctx.data_dir) / "wheels").exists()


def test_a_version_outside_the_requested_specifier_is_refused(
    ctx: Context, world: World, project: str, tmp_path: Path
) -> None:
    asked = packages.request_package(
        ctx, world.researcher, project, "tiny-pkg", why=WHY, version=">=2"
    )
    wheel = make_wheel(tmp_path / "downloads", "tiny-pkg", "1.0")
    with pytest.raises(ControlError) as refused:
        packages.decide_package(ctx, world.admin, asked.uuid, approve=True, wheels=[wheel])
    assert refused.value.rule == "wrong_version"


def test_a_rejection_is_recorded_with_its_reason_and_cannot_be_decided_again(
    ctx: Context, world: World, project: str, tmp_path: Path
) -> None:
    asked = packages.request_package(ctx, world.researcher, project, "tiny-pkg", why=WHY)
    done = packages.decide_package(ctx, world.admin, asked.uuid, approve=False, reason="unused")
    assert (done.state, done.reason, done.wheels) == ("rejected", "unused", [])
    assert audit.records(ctx.engine)[-1].detail["decision"] == "rejected"
    wheel = make_wheel(tmp_path / "downloads", "tiny-pkg")
    with pytest.raises(ControlError) as again:
        packages.decide_package(ctx, world.admin, asked.uuid, approve=True, wheels=[wheel])
    assert again.value.rule == "request_state"


def test_researchers_see_only_their_projects_requests(
    ctx: Context, world: World, project: str
) -> None:
    packages.request_package(ctx, world.researcher, project, "tiny-pkg", why=WHY)
    assert [v.name for v in packages.list_packages(ctx, world.researcher)] == ["tiny-pkg"]
    assert [v.name for v in packages.list_packages(ctx, world.admin)] == ["tiny-pkg"]
    outsider(ctx, world)
    assert packages.list_packages(ctx, "out@example.org") == []
    with pytest.raises(ControlError) as refused:
        packages.list_packages(ctx, world.checker)
    assert refused.value.rule == "role"


@pytest.mark.parametrize("state", [ProjectState.PROPOSED, ProjectState.SUSPENDED])
def test_requests_need_an_approved_or_active_project(
    ctx: Context, world: World, state: ProjectState
) -> None:
    make_project(ctx, world, SLUG, state)
    with pytest.raises(ControlError) as refused:
        packages.request_package(ctx, world.researcher, SLUG, "tiny-pkg", why=WHY)
    assert refused.value.rule == "project_state"


def test_the_rules_keep_deciding_apart_from_requesting() -> None:
    assert PERMISSIONS[Action.REQUEST_PACKAGE] == {Role.RESEARCHER}
    assert PERMISSIONS[Action.DECIDE_PACKAGE] == {Role.ADMIN}


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("tiny_pkg-1.0-py3-none-any.whl", ("tiny-pkg", "1.0")),
        ("Zope.Interface-5.0-1-cp311-cp311-linux_x86_64.whl", ("zope-interface", "5.0")),
    ],
)
def test_wheel_names_parse_to_normalised_projects(name: str, ok: tuple[str, str]) -> None:
    parsed = wheelhouse.parse_wheel_name(name)
    assert (parsed.project, parsed.version) == ok


@pytest.mark.parametrize(
    "name", ["../evil-1.0-py3-none-any.whl", "evil-1.0.whl", "evil-1.0-py3-none-any.tar.gz"]
)
def test_what_is_not_a_plain_wheel_name_is_refused(name: str) -> None:
    with pytest.raises(wheelhouse.BadWheelName):
        wheelhouse.parse_wheel_name(name)


# ----- the command line ----------------------------------------------------------------------


def test_cli_request_list_approve_reject(
    ctx: Context,
    world: World,
    project: str,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in list(os.environ):
        if name.startswith("ENCLAVE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ENCLAVE_DATA_DIR", str(ctx.data_dir))
    monkeypatch.setenv("ENCLAVE_DATABASE_URL", database_url)

    def run(command: str) -> tuple[int, str, str]:
        code = main(shlex.split(command))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    r, a = f"--as {world.researcher}", f"--as {world.admin}"
    code, out, err = run(f"admin request-package {r} {project} tiny-pkg --why 'mixed models'")
    assert code == 0, err
    first = out.split("\t")[1]
    code, out, _ = run(f"admin request-package {r} {project} other-pkg --why 'plots'")
    second = out.split("\t")[1]
    wheel = make_wheel(tmp_path / "downloads", "tiny-pkg")
    code, _, err = run(f"admin approve-package {r} {first} --wheel {wheel}")
    assert code == 2 and err.rstrip().endswith("[role]")
    code, out, err = run(f"admin approve-package {a} {second} --wheel {wheel}")
    assert code == 2 and "not of the requested other-pkg" in err
    code, out, err = run(f"admin approve-package {a} {first} --wheel {wheel}")
    assert code == 0, err
    assert out.splitlines()[0].split("\t")[:2] == ["wheel", wheel.name]
    code, out, err = run(f"admin reject-package {a} {second} --reason 'not needed'")
    assert code == 0 and out.rstrip().endswith("rejected"), err
    code, out, _ = run(f"admin package-requests {a} --json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(x["name"], x["state"]) for x in rows] == [
        ("tiny-pkg", "approved"),
        ("other-pkg", "rejected"),
    ]
    assert rows[0]["wheels"][0]["sha256"] == hashlib.sha256(wheel.read_bytes()).hexdigest()
