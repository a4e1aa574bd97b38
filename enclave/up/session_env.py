"""The sessions' Python environment: what ``BwrapSpawner`` mounts read-only as ``sys.prefix``.

Built under the data directory with the system's ``python3`` (the session accounts must read
it, and the hub's venv may live under ``/root``): JupyterLab and the kernel's packages once
(about a minute), then this repository's packages copied in (not editable: the repository is
not mounted in the sandbox; ``install_hardening`` names ``enclave.hub.singleuser``), again
whenever their source changes. ``install_hardening`` is applied last. Each part is stamped,
so a second run reuses it in a fraction of a second.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from enclave.hub.guidance import GUIDE_IN_ENVIRONMENT
from enclave.hub.singleuser import install_hardening

# JupyterLab and the kernel, then what ``enclave.analysis`` and the checker import in a notebook
PACKAGES = (
    "jupyterhub==6.1.1", "jupyterlab==4.6.6", "ipykernel", "pandas", "numpy", "scipy",
    "statsmodels", "pyarrow", "jsonschema", "highspy", "matplotlib", "openpyxl", "duckdb",
)  # fmt: skip
STAMP = ".enclave-stamp"
SOURCE_STAMP = ".enclave-source-stamp"
SYSTEM_PYTHON = Path("/usr/bin/python3")


class SessionEnvError(RuntimeError):
    """The environment could not be built; the message says what to install."""


def ensure(target: Path, repo: Path, *, given: Path | None = None) -> Path:
    """The environment to use: ``given`` exactly as it is (a prebuilt one, in the tests),
    else the one built (or reused) at ``target``, with the repository's packages, hardened."""
    if given is not None:
        return given
    _build(target, repo / "constraints.txt")
    _install_repo(target, repo)
    install_hardening(target)
    return target


def source_digest(repo: Path) -> str:
    """A digest of the packages' sources: a change means copying them in again."""
    digest = hashlib.sha256()
    for package in ("enclave", "output_checker"):
        for path in sorted((repo / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(repo)).encode() + b"\0" + path.read_bytes())
    digest.update((repo / "pyproject.toml").read_bytes())
    guide = repo / "docs" / "analysis.md"
    if guide.is_file():
        digest.update(guide.read_bytes())
    return digest.hexdigest()


def _install_repo(target: Path, repo: Path) -> None:
    stamp = target / SOURCE_STAMP
    want = source_digest(repo)
    if stamp.exists() and stamp.read_text(encoding="utf-8") == want:
        return
    print("copying the enclave's packages into the session environment", flush=True)
    pip = [str(target / "bin" / "pip"), "install", "-q", "--disable-pip-version-check"]
    done = subprocess.run(
        [*pip, "--no-deps", "--force-reinstall", str(repo)], capture_output=True, text=True
    )
    if done.returncode:
        raise SessionEnvError(f"pip could not install the enclave: {done.stderr[-500:]}")
    install_guide(target, repo)
    stamp.write_text(want, encoding="utf-8")


def install_guide(target: Path, repo: Path) -> None:
    """Copy the analysis library's guide where the spawner serves it from (SATRE 2.1.05)."""
    guide = target / GUIDE_IN_ENVIRONMENT
    guide.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    shutil.copyfile(repo / "docs" / "analysis.md", guide)
    guide.chmod(0o644)  # the session accounts read it


def _build(target: Path, constraints: Path | None) -> Path:
    stamp = target / STAMP
    want = hashlib.sha256(" ".join(PACKAGES).encode()).hexdigest()
    if stamp.exists() and stamp.read_text(encoding="utf-8") == want:
        return target
    if not SYSTEM_PYTHON.exists():
        raise SessionEnvError("no /usr/bin/python3: `apt-get install python3 python3-venv`")
    print(f"building the session environment in {target} (once, about a minute)", flush=True)
    made = subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", "--clear", str(target)])
    if made.returncode:
        raise SessionEnvError("cannot create a venv: `apt-get install python3-venv`")
    pip = [str(target / "bin" / "pip"), "install", "-q", "--disable-pip-version-check"]
    pinned = ["-c", str(constraints)] if constraints and constraints.exists() else []
    done = subprocess.run([*pip, *pinned, *PACKAGES], capture_output=True, text=True)
    if done.returncode and pinned:
        # some pins need a newer interpreter than the system's: keep the named ones only
        done = subprocess.run([*pip, *PACKAGES], capture_output=True, text=True)
    if done.returncode:
        raise SessionEnvError(f"pip could not install the session packages: {done.stderr[-500:]}")
    # jsonschema's optional rfc3987-syntax builds a grammar at import: 3 s per spawn
    subprocess.run([pip[0], "uninstall", "-y", "-q", "rfc3987-syntax"], check=False)
    stamp.write_text(want, encoding="utf-8")
    return target
