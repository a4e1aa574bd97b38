"""The Kubernetes backend of the same session policy: a decision becomes KubeSpawner traits.

``deploy/k8s/values.yaml`` (zero-to-jupyterhub) defines ``EnclaveKubeSpawner``, which
asks ``SessionPolicy.decide`` in ``start`` exactly as ``BwrapSpawner`` does and applies
``pod_overrides``. The zones map onto two volumes: the research extracts (a ReadOnlyMany
claim, mounted read-only) and the working area with homes and outboxes (ReadWriteMany),
both laid out as ``<data_dir>/projects`` is on a single host. Names in sub-paths come from
an allowed decision, whose slug and username the policy has already checked.

Guidance (SATRE 2.1.05): the hub cannot reach a pod's home, so the pod writes it itself at
start (a postStart hook, as the session's own user): the data dictionary of the grants from
the environment, and the analysis guide the image's Python environment carries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from enclave.hub.guidance import DICTIONARY_FILE, GUIDE_FILE, GUIDE_IN_ENVIRONMENT
from enclave.hub.policy import SessionDecision

HOME = "/home/jovyan"
# Run by the pod as its own user: a link the user planted only redirects a write the user
# could make anyway. It never fails (a failed postStart hook kills the container): a name the
# user made a directory is left alone. The guide is where ``pip install`` puts the package's
# data files.
GUIDANCE_HOOK = (
    f'rm -f "$HOME/{DICTIONARY_FILE}"; '
    f'printf "%s\\n" "$ENCLAVE_DATA_DICTIONARY" > "$HOME/{DICTIONARY_FILE}" 2>/dev/null; '
    f'guide="$(python3 -c "import sys; print(sys.prefix)")/{GUIDE_IN_ENVIRONMENT}"; '
    f'if [ -f "$guide" ]; then rm -f "$HOME/{GUIDE_FILE}"; '
    f'cp "$guide" "$HOME/{GUIDE_FILE}" 2>/dev/null; fi; true'
)


@dataclass(frozen=True)
class KubeVolumes:
    """The claims behind the zones, and the sandbox runtime of the top tiers."""

    data_claim: str = "enclave-extracts"  # ReadOnlyMany: <slug>/data
    work_claim: str = "enclave-work"  # ReadWriteMany: <slug>/home/<user>, <slug>/outbox/<user>
    hardened_tiers: frozenset[str] = frozenset({"3"})
    runtime_class: str = "gvisor"


def pod_overrides(decision: SessionDecision, volumes: KubeVolumes) -> dict[str, Any]:
    """KubeSpawner trait values for an allowed decision; ValueError for a refused one."""
    if not decision.allowed:
        raise ValueError("a refused decision has no pod")
    project, user = decision.project, decision.username
    limits = decision.limits
    pod: dict[str, Any] = {"automountServiceAccountToken": False, "hostUsers": False}
    if decision.tier in volumes.hardened_tiers:
        pod["runtimeClassName"] = volumes.runtime_class
    return {
        "volumes": [
            {
                "name": "extract",
                "persistentVolumeClaim": {"claimName": volumes.data_claim, "readOnly": True},
            },
            {"name": "work", "persistentVolumeClaim": {"claimName": volumes.work_claim}},
        ],
        "volume_mounts": [
            {"name": "work", "mountPath": HOME, "subPath": f"{project}/home/{user}"},
            {
                "name": "extract",
                "mountPath": f"{HOME}/data",
                "subPath": f"{project}/data",
                "readOnly": True,
            },
            {"name": "work", "mountPath": f"{HOME}/outbox", "subPath": f"{project}/outbox/{user}"},
        ],
        "mem_limit": limits.memory_bytes,
        "mem_guarantee": limits.memory_bytes,
        "cpu_limit": limits.cpus,
        "environment": {
            "ENCLAVE_PROJECT": project,
            "ENCLAVE_TIER": decision.tier,
            "ENCLAVE_OUTBOX": f"{HOME}/outbox",
            "ENCLAVE_DATA_DICTIONARY": decision.dictionary,
        },
        "lifecycle_hooks": {"postStart": {"exec": {"command": ["sh", "-c", GUIDANCE_HOOK]}}},
        "uid": 1000,
        "fs_gid": 100,
        "extra_pod_config": pod,
        "extra_container_config": {
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
                "runAsNonRoot": True,
                "seccompProfile": {"type": "RuntimeDefault"},
            }
        },
    }
