"""Guidance inside the session (SATRE 2.1.05): the analysis guide and a data dictionary of
exactly the granted variables, in the home the session mounts, written without following a
link the researcher planted."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from enclave.control.context import Context
from enclave.control.service import datasets, grants
from enclave.control.varspec import variable
from enclave.hub import guidance, sandbox
from enclave.hub.accounts import Account
from enclave.hub.policy import SessionDecision, SessionPolicy
from enclave.hub.spawner import BwrapSpawner
from enclave.up.session_env import install_guide
from tests.enclave.control.factories import World, make_project, make_world

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def world(ctx: Context) -> World:
    """Project ``alpha`` granted hospital episodes' ``age_band`` and two of three survey
    variables; the survey's identifier is registered but not granted."""
    world = make_world(ctx)
    make_project(ctx, world, "alpha", "active")
    datasets.register_dataset(
        ctx,
        world.admin,
        slug="survey",
        name="Household Survey",
        source_agency="Stats Agency",
        description="Annual household survey",
        version="ef" * 32,
        custodian=world.custodian,
        permitted_purposes=["health_research"],
        variables=(
            variable("respondent_id", "direct_identifier", "the respondent's survey number"),
            variable("income", "sensitive", "net household income | yearly\nin pounds"),
            variable("region", "quasi_identifier", "region of residence"),
        ),
    )
    grant = grants.request_grant(
        ctx,
        world.admin,
        project="alpha",
        dataset="survey",
        variables=["income", "region"],
        expires_on=ctx.today() + timedelta(days=90),
    )
    grants.approve_grant(ctx, world.custodian, grant.uuid)
    return world


def _rows(dictionary: str) -> list[str]:
    """The variable rows of the dictionary's tables, as ``name sensitivity description``."""
    cells = [line.strip("|").split(" | ") for line in dictionary.splitlines()]
    return [" ".join(c.strip().strip("`") for c in row) for row in cells if row[0].startswith(" `")]


def test_the_dictionary_lists_exactly_the_granted_variables(ctx: Context, world: World) -> None:
    decision = SessionPolicy(ctx).decide("researcher", "alpha")
    assert decision.allowed
    assert _rows(decision.dictionary) == [
        "age_band quasi_identifier -",
        "income sensitive net household income \\| yearly in pounds",
        "region quasi_identifier region of residence",
    ]
    assert "## Household Survey (`survey`)" in decision.dictionary
    assert f"- Version: `sha256:{'ef' * 32}`" in decision.dictionary.splitlines()
    # attack: variables of a granted dataset that the grant leaves out are not even named
    for ungranted in ("respondent_id", "survey number", "nhs_number", "patient identifier"):
        assert ungranted not in decision.dictionary
    assert "dictionary=" not in repr(decision)  # kept out of the hub's logs


def test_a_project_without_grants_says_so(ctx: Context) -> None:
    world = make_world(ctx)
    make_project(ctx, world, "bare", "active", grant=None)
    decision = SessionPolicy(ctx).decide("researcher", "bare")
    assert decision.allowed and _rows(decision.dictionary) == []
    assert "No dataset is granted" in decision.dictionary


def _spawner(tmp_path: Path, environment: Path) -> BwrapSpawner:
    return BwrapSpawner(
        user=SimpleNamespace(name="researcher", url="/user/researcher/"),
        enclave_data_dir=str(tmp_path / "data"),
        enclave_database_url=f"sqlite:///{tmp_path / 'unused.sqlite3'}",
        python_environment=str(environment),
        socket_root=str(tmp_path / "run"),
    )


def _decision(tmp_path: Path, dictionary: str) -> SessionDecision:
    project = tmp_path / "data" / "projects" / "alpha"
    return SessionDecision(
        allowed=True,
        username="researcher",
        project="alpha",
        data=project / "data",
        home=project / "home" / "researcher",
        outbox=project / "outbox" / "researcher",
        dictionary=dictionary,
    )


def test_the_guide_and_dictionary_are_in_the_home_the_session_mounts(tmp_path: Path) -> None:
    environment = tmp_path / "env"
    install_guide(environment, REPO)
    assert guidance.guide_source(environment) == environment / guidance.GUIDE_IN_ENVIRONMENT
    spawner = _spawner(tmp_path, environment)
    decision = _decision(tmp_path, "# Data dictionary: alpha\n")
    account = Account("researcher", os.getuid(), os.getgid())
    sockets = spawner._prepare_dirs(decision, account)
    assert decision.home is not None
    guide = (decision.home / guidance.GUIDE_FILE).read_text(encoding="utf-8")
    assert guide == (REPO / "docs" / "analysis.md").read_text(encoding="utf-8")
    assert (decision.home / guidance.DICTIONARY_FILE).read_text() == "# Data dictionary: alpha\n"
    assert (decision.home / guidance.DICTIONARY_FILE).stat().st_mode & 0o777 == 0o444
    # the home is what the session sees as /home/<user>
    plan = sandbox.SandboxPlan(
        "researcher", account.uid, account.gid, environment, decision.home, sockets, None, ("x",)
    )
    args = sandbox.bwrap_args(plan, sandbox.Fds(7, 8))
    at = args.index(str(decision.home))
    assert (args[at - 1], args[at + 1]) == ("--bind", "/home/researcher")


def test_a_planted_link_is_replaced_not_followed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    target = tmp_path / "hub-owned.txt"
    target.write_text("precious")
    (home / guidance.DICTIONARY_FILE).symlink_to(target)
    os.link(target, home / guidance.GUIDE_FILE)  # a hard link, where the kernel allows it
    guide = tmp_path / "guide.md"
    guide.write_text("# Guide\n")
    written = guidance.write_guidance(home, "# Dictionary\n", guide)
    assert written == [guidance.DICTIONARY_FILE, guidance.GUIDE_FILE]
    assert target.read_text() == "precious"
    assert not (home / guidance.DICTIONARY_FILE).is_symlink()
    assert (home / guidance.DICTIONARY_FILE).read_text() == "# Dictionary\n"
    assert (home / guidance.GUIDE_FILE).read_text() == "# Guide\n"


def test_a_directory_of_the_same_name_is_left_alone(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / guidance.DICTIONARY_FILE).mkdir(parents=True)
    (home / guidance.DICTIONARY_FILE / "mine.txt").write_text("keep")
    assert guidance.write_guidance(home, "# Dictionary\n", None) == []
    assert (home / guidance.DICTIONARY_FILE / "mine.txt").read_text() == "keep"
