"""docs/control-plane.md shows the permission and state tables generated from the rule data;
this test fails when the two drift apart (run this file to print the current table)."""

from __future__ import annotations

from pathlib import Path

from enclave.control.rules import (
    ALLOWED_STATES,
    PERMISSIONS,
    TRANSITIONS,
    Action,
    ProjectState,
    Role,
)

DOC = Path(__file__).parents[3] / "docs" / "control-plane.md"


def permission_table() -> str:
    roles = list(Role)
    states = list(ProjectState)
    header = "| action | " + " | ".join(r.value for r in roles) + " | project states |"
    rule = "|---" * (len(roles) + 2) + "|"
    rows = []
    for action in Action:
        marks = " | ".join("yes" if r in PERMISSIONS[action] else "" for r in roles)
        allowed = ALLOWED_STATES.get(action)
        where = "any" if allowed is None else ", ".join(s.value for s in states if s in allowed)
        rows.append(f"| {action.value} | {marks} | {where} |")
    return "\n".join([header, rule, *rows])


def transition_table() -> str:
    rows = ["| transition | from | to |", "|---|---|---|"]
    for action, target in TRANSITIONS.items():
        sources = ", ".join(s.value for s in ProjectState if s in ALLOWED_STATES[action])
        rows.append(f"| `{action.value}` | {sources} | {target.value} |")
    return "\n".join(rows)


def test_doc_shows_the_current_tables() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert permission_table() in text
    assert transition_table() in text


if __name__ == "__main__":
    print(permission_table(), transition_table(), sep="\n\n")
