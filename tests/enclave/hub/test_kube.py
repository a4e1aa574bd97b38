"""The Kubernetes backend: a policy decision becomes a pod, and the chart values keep the
security settings of spec §11 (the chart's own defaults are weaker)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from enclave.hub.guidance import DICTIONARY_FILE, GUIDE_FILE, GUIDE_IN_ENVIRONMENT
from enclave.hub.kube import KubeVolumes, pod_overrides
from enclave.hub.policy import Limits, SessionDecision, refused

VALUES = Path(__file__).resolve().parents[3] / "deploy" / "k8s" / "values.yaml"

ALLOWED = SessionDecision(
    allowed=True,
    username="rae",
    project="p1",
    tier="2",
    limits=Limits(memory_bytes=2 * 1024**3, cpus=1.5, pids=256),
    data=Path("/srv/enclave/projects/p1/data"),
    home=Path("/srv/enclave/projects/p1/home/rae"),
    outbox=Path("/srv/enclave/projects/p1/outbox/rae"),
)


def test_the_pod_mounts_only_this_projects_zones() -> None:
    pod = pod_overrides(ALLOWED, KubeVolumes())
    mounts = {m["mountPath"]: m for m in pod["volume_mounts"]}
    assert mounts["/home/jovyan/data"] == {
        "name": "extract",
        "mountPath": "/home/jovyan/data",
        "subPath": "p1/data",
        "readOnly": True,
    }
    assert mounts["/home/jovyan"]["subPath"] == "p1/home/rae"
    assert mounts["/home/jovyan/outbox"]["subPath"] == "p1/outbox/rae"
    assert all(m.get("readOnly") for m in pod["volume_mounts"] if m["name"] == "extract")
    claims = {v["name"]: v["persistentVolumeClaim"] for v in pod["volumes"]}
    assert claims["extract"] == {"claimName": "enclave-extracts", "readOnly": True}
    assert (pod["mem_limit"], pod["cpu_limit"]) == (2 * 1024**3, 1.5)
    assert pod["extra_pod_config"] == {"automountServiceAccountToken": False, "hostUsers": False}
    security = pod["extra_container_config"]["securityContext"]
    assert security["allowPrivilegeEscalation"] is False and security["capabilities"] == {
        "drop": ["ALL"]
    }


def test_the_pod_writes_the_dictionary_and_the_guide_into_its_home(tmp_path: Path) -> None:
    """The postStart hook run by a real shell, as the pod would: the grants' dictionary from
    the environment and the guide from the Python environment land in the home; a name the
    user made a directory is left alone, and the hook still succeeds (a failing hook would
    kill the container)."""
    decision = replace(ALLOWED, dictionary="# Data dictionary: p1\n\n| `age` | quasi |")
    pod = pod_overrides(decision, KubeVolumes())
    command = pod["lifecycle_hooks"]["postStart"]["exec"]["command"]
    prefix, home = tmp_path / "env", tmp_path / "home"
    guide = prefix / GUIDE_IN_ENVIRONMENT
    guide.parent.mkdir(parents=True)
    guide.write_text("# The analysis guide\n")
    base = Path(sys._base_executable)  # a virtual environment at prefix, as in the image
    (prefix / "bin").mkdir()
    (prefix / "bin" / "python3").symlink_to(base)
    (prefix / "pyvenv.cfg").write_text(f"home = {base.parent}\n")
    home.mkdir()
    (home / DICTIONARY_FILE).write_text("stale")
    (home / DICTIONARY_FILE).chmod(0o444)
    env = {
        **pod["environment"],
        "HOME": str(home),
        "PATH": f"{prefix / 'bin'}:/usr/bin:/bin",
    }
    run = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert run.returncode == 0
    assert (home / DICTIONARY_FILE).read_text() == decision.dictionary + "\n"
    assert (home / GUIDE_FILE).read_text() == "# The analysis guide\n"

    (home / GUIDE_FILE).unlink(missing_ok=True)
    (home / GUIDE_FILE).mkdir()  # the user's own directory of that name
    again = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert again.returncode == 0 and (home / GUIDE_FILE).is_dir()


def test_the_top_tier_runs_under_a_sandboxed_runtime() -> None:
    top = SessionDecision(**{**ALLOWED.__dict__, "tier": "3"})
    assert pod_overrides(top, KubeVolumes())["extra_pod_config"]["runtimeClassName"] == "gvisor"


def test_a_refused_decision_has_no_pod() -> None:
    with pytest.raises(ValueError, match="refused"):
        pod_overrides(refused("rae", "p1", "membership"), KubeVolumes())


def test_the_chart_values_keep_the_enclaves_settings() -> None:
    values = yaml.safe_load(VALUES.read_text())
    hub = values["hub"]
    assert hub["config"]["JupyterHub"]["admin_access"] is False
    assert hub["allowNamedServers"] is True
    policy = values["singleuser"]["networkPolicy"]
    assert policy["enabled"] is True and policy["egress"] == []
    assert not any(policy["egressAllowRules"].values())  # no internet, no cluster, no DNS
    assert values["singleuser"]["serviceAccountName"] is None
    assert values["proxy"]["service"]["loadBalancerSourceRanges"]
    cull = values["cull"]
    assert (cull["enabled"], cull["users"], cull["removeNamedServers"]) == (True, False, False)
    source = hub["extraConfig"]["enclave-spawner"]
    compile(source, "enclave-spawner", "exec")  # the hub would fail to start on a syntax error
    assert "POLICY.decide" in source and "pod_overrides" in source
