"""The sessions' wheelhouse as data (pure): wheel file names, the PEP 503 simple index built
from the approved wheels, and the pip configuration that points sessions at it.

Layout under ``<data_dir>/packages`` (mounted read-only at ``INSIDE`` in every sandbox)::

    wheels/<file>.whl            the approved wheels, nothing else
    simple/index.html            one link per project
    simple/<project>/index.html  one link per wheel, with its ``#sha256=`` fragment
    pip.conf                     what ``PIP_CONFIG_FILE`` names inside the sandbox

The links are relative, so the same pages serve the host path (tests, the operator) and the
path inside the sandbox. pip checks each download against the fragment.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass

INSIDE = "/opt/enclave/packages"  # where sandboxes see the wheelhouse
WHEELS = "wheels"
SIMPLE = "simple"
PIP_CONF = "pip.conf"

_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
_WHEEL_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._]*[A-Za-z0-9])?$")
_PART = re.compile(r"^[A-Za-z0-9._+!]+$")


class BadWheelName(ValueError):
    """A file name that is not a wheel's (``name-version[-build]-python-abi-platform.whl``)."""


@dataclass(frozen=True)
class WheelName:
    project: str  # normalised
    version: str
    filename: str


def normalise(name: str) -> str:
    """PEP 503: runs of ``-``, ``_`` and ``.`` become one ``-``, lower-cased."""
    return re.sub(r"[-_.]+", "-", name).lower()


def valid_project_name(name: str) -> bool:
    """Whether ``name`` is a valid distribution name (PEP 508)."""
    return bool(_NAME.match(name))


def parse_wheel_name(filename: str) -> WheelName:
    """The project and version a wheel's file name declares (PEP 427); BadWheelName if the
    name is not a plain wheel file name (no directory part, five or six fields)."""
    if "/" in filename or "\\" in filename or not filename.endswith(".whl"):
        raise BadWheelName(f"{filename!r} is not a wheel file name (*.whl)")
    parts = filename[: -len(".whl")].split("-")
    if len(parts) not in (5, 6) or not _WHEEL_NAME.match(parts[0]):
        raise BadWheelName(f"{filename!r} is not a wheel file name (name-version-...-tag.whl)")
    if not all(_PART.match(part) for part in parts[1:]):
        raise BadWheelName(f"{filename!r} has an invalid character in a tag")
    return WheelName(project=normalise(parts[0]), version=parts[1], filename=filename)


def _page(title: str, links: list[str]) -> str:
    body = "\n".join(f"    {link}<br/>" for link in links)
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        '    <meta name="pypi:repository-version" content="1.0"/>\n'
        f"    <title>{html.escape(title)}</title>\n  </head>\n  <body>\n"
        f"{body}\n  </body>\n</html>\n"
    )


def index_pages(wheels: Mapping[str, str]) -> dict[str, str]:
    """The simple index of ``wheels`` (file name -> sha256) as {path under the wheelhouse:
    page}: the root page and one page per project, in sorted order (stable output)."""
    by_project: dict[str, list[str]] = {}
    for filename in sorted(wheels):
        by_project.setdefault(parse_wheel_name(filename).project, []).append(filename)
    pages = {
        f"{SIMPLE}/index.html": _page(
            "Simple index",
            [f'<a href="{p}/">{html.escape(p)}</a>' for p in sorted(by_project)],
        )
    }
    for project, files in sorted(by_project.items()):
        links = [
            f'<a href="../../{WHEELS}/{html.escape(f)}#sha256={wheels[f]}">{html.escape(f)}</a>'
            for f in files
        ]
        pages[f"{SIMPLE}/{project}/index.html"] = _page(f"Links for {project}", links)
    return pages


def pip_conf(root: str = INSIDE) -> str:
    """pip's configuration for sessions: the wheelhouse's index only, wheels only (no
    source distribution's build code runs), no version check (there is no network)."""
    return (
        "# written by the enclave: packages come from the reviewed wheelhouse only\n"
        "[global]\n"
        f"index-url = file://{root}/{SIMPLE}/\n"
        "disable-pip-version-check = true\n"
        "no-input = true\n"
        "\n[install]\n"
        "only-binary = :all:\n"
    )
