"""Where the Ansible roles are, and their templates rendered outside Ansible (plain Jinja2,
which is what Ansible's template module runs) for checks against real servers."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import jinja2
import yaml  # type: ignore[import-untyped]  # PyYAML ships no type information

REPO = Path(__file__).resolve().parents[2]
ANSIBLE = REPO / "ansible"
ROLES = ANSIBLE / "roles"
DEPLOY = REPO / "deploy"
VENV_BIN = Path(sys.executable).parent  # ansible, ansible-lint: installed beside pytest


def defaults(role: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text())
    return loaded


def render(role: str, template: str, **variables: Any) -> str:
    """``roles/<role>/templates/<template>`` rendered with ``variables`` (strictly: a variable
    the template needs and the caller did not give is an error, not an empty string)."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(ROLES / role / "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,  # as Ansible renders
        keep_trailing_newline=True,
    )
    return environment.get_template(template).render(
        ansible_managed="rendered by the tests", **variables
    )
