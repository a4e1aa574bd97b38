"""The rule tables themselves: a state machine with no dead ends and the separations of duty
the governance model depends on."""

from __future__ import annotations

import pytest

from enclave.control.errors import PermissionDenied
from enclave.control.rules import (
    ALLOWED_STATES,
    FINAL_STATES,
    PERMISSIONS,
    TRANSITIONS,
    Action,
    ProjectState,
    Role,
    can,
    check_role,
    check_state,
    transitions_from,
)


@pytest.mark.parametrize("state", list(ProjectState))
def test_every_open_state_has_a_way_out_and_final_states_none(state: ProjectState) -> None:
    ways_out = transitions_from(state)
    if state in FINAL_STATES:
        assert ways_out == {}
    else:
        assert ways_out, f"{state} is a dead end"
        assert ProjectState.CLOSED in ways_out.values() or state is ProjectState.PROPOSED


def test_every_state_is_reachable_from_proposed() -> None:
    reached, frontier = {ProjectState.PROPOSED}, [ProjectState.PROPOSED]
    while frontier:
        for target in transitions_from(frontier.pop()).values():
            if target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(ProjectState)


def test_every_transition_action_declares_its_source_states() -> None:
    assert set(TRANSITIONS) <= set(ALLOWED_STATES)


def test_grant_decisions_and_requests_belong_to_different_roles() -> None:
    # The two-person rule between roles: who asks never holds the role that approves.
    assert not PERMISSIONS[Action.REQUEST_GRANT] & PERMISSIONS[Action.APPROVE_GRANT]
    assert PERMISSIONS[Action.APPROVE_GRANT] == {Role.DATA_CUSTODIAN}


def test_sessions_and_releases_only_in_active_projects() -> None:
    for action in (Action.START_SESSION, Action.RELEASE_OUTPUT):
        assert ALLOWED_STATES[action] == {ProjectState.ACTIVE}


def test_checks_raise_with_the_rule_name() -> None:
    with pytest.raises(PermissionDenied, match="requires the role admin") as error:
        check_role(["researcher"], Action.CREATE_PROJECT)
    assert error.value.rule == "role"
    with pytest.raises(PermissionDenied, match="while the project is suspended") as error:
        check_state(Action.START_SESSION, "suspended")
    assert error.value.rule == "project_state"


def test_can_answers_without_raising() -> None:
    assert can(["admin"], Action.CLOSE_PROJECT, "active")
    assert not can(["admin"], Action.CLOSE_PROJECT, "closed")
    assert not can([], Action.LIST_DATASETS)
    assert can(["researcher"], Action.LIST_DATASETS)
