"""The Kubernetes scale-out (deploy/k8s): every manifest is valid against the Kubernetes API's
schemas (kubernetes-validate's bundled copies, checked here to open no connection), every pod is
locked down, no secret value is in the repository, and the NetworkPolicies (ours plus those the
chart renders from values.yaml) deny the attacks of spec §11 while allowing the enclave's flows.

The chart's own values schema is in no package registry, so the chart's security-relevant keys
are asserted directly here and in tests/enclave/hub/test_kube.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import socket
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from jupyterhub.spawner import SpawnException
from traitlets.config import Config

from enclave.control import db
from enclave.hub.kube import KubeVolumes, pod_overrides
from enclave.hub.policy import Limits, SessionDecision, refused
from tests.deploy.netpol import Cluster, Host, Pod
from tests.deploy.z2jh import chart_pods, chart_policies
from tests.enclave.hub.test_kube import ALLOWED

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
KUBERNETES_VERSION = "1.33"  # sessions ask for user namespaces (hostUsers), on by default here
SECRET_ENV = ("SECRET", "TOKEN", "PASSWORD", "DATABASE_URL", "PGPASS")

POSTGRES = Host("postgresql", "198.51.100.10")
API_SERVER = Host("kubernetes-api", "203.0.113.5")
IDP = Host("identity-provider", "203.0.113.20")
INTERNET = Host("internet", "1.1.1.1")
RESOLVER = Host("public-resolver", "8.8.8.8")
METADATA = Host("cloud-metadata", "169.254.169.254")
NODE_NETWORK = Host("private-network", "10.0.0.7")


def load(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]


def kustomization() -> dict[str, Any]:
    return load("kustomization.yaml")[0]


def manifests() -> list[dict[str, Any]]:
    return [doc for name in kustomization()["resources"] for doc in load(name)]


def workloads() -> list[dict[str, Any]]:
    return [doc for doc in manifests() if doc["kind"] == "Deployment"]


def values() -> dict[str, Any]:
    document: dict[str, Any] = load("values.yaml")[0]
    return document


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Any attempt to resolve a name or open a connection fails the test."""
    attempts: list[str] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(repr(args))
        raise OSError("network access during schema validation")

    for name in ("create_connection", "getaddrinfo"):
        monkeypatch.setattr(socket, name, refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    yield attempts
    assert attempts == []


def validate(document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_the_kustomization_applies_every_manifest_and_no_secret() -> None:
    listed = set(kustomization()["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"values.yaml", "kustomization.yaml"}
    assert listed == on_disk
    kinds = {doc["kind"] for doc in manifests()}
    assert "Secret" not in kinds
    assert {"Deployment", "Service", "PersistentVolumeClaim", "NetworkPolicy"} <= kinds
    assert kustomization()["namespace"] == "enclave"


def test_every_manifest_matches_the_kubernetes_schemas(no_network: list[str]) -> None:
    documents = manifests() + load("secrets.yaml.example") + load("storageclasses.yaml.example")
    assert len(documents) >= 15
    for document in documents:
        validate(document)  # raises with the path of the first bad field


def test_every_claims_storage_class_encrypts_at_rest() -> None:
    classes = {doc["metadata"]["name"]: doc for doc in load("storageclasses.yaml.example")}
    claims = [doc for doc in manifests() if doc["kind"] == "PersistentVolumeClaim"]
    assert len(claims) == 5
    for claim in claims:
        storage_class = classes[claim["spec"]["storageClassName"]]
        assert storage_class["parameters"]["encrypted"] == "true"
        assert storage_class["reclaimPolicy"] == "Retain"


def test_the_validator_refuses_a_misspelt_field(no_network: list[str]) -> None:
    queue = next(doc for doc in workloads() if doc["metadata"]["name"] == "review-queue")
    container = queue["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["readOnlyRootFileSystem"] = True  # capital S: not a field
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(queue)
    del container["securityContext"]["readOnlyRootFileSystem"]
    container["resources"]["limits"]["cpu"] = ["2"]
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(queue)


def test_a_sessions_pod_matches_the_kubernetes_schemas(no_network: list[str]) -> None:
    """The fields enclave.hub.kube hands KubeSpawner, placed where KubeSpawner puts them."""
    decision = dataclasses.replace(ALLOWED, tier="3")  # tier 3: the gVisor runtime too
    traits = pod_overrides(decision, KubeVolumes())
    container = {
        "name": "notebook",
        "image": "registry.example.org/enclave/session-tier3:set-me",
        "volumeMounts": traits["volume_mounts"],
        "env": [{"name": k, "value": v} for k, v in traits["environment"].items()],
        **traits["extra_container_config"],
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "jupyter-rae--p1"},
        "spec": {
            "securityContext": {"runAsUser": traits["uid"], "fsGroup": traits["fs_gid"]},
            "containers": [container],
            "volumes": traits["volumes"],
            **traits["extra_pod_config"],
        },
    }
    validate(pod)
    pod["spec"]["hostUser"] = False  # a misspelling of hostUsers is caught
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(pod)


@pytest.mark.slow
def test_the_validation_passes_without_any_network(tmp_path: Path) -> None:
    """Run in a fresh network namespace (no interface but a downed loopback): a schema fetched
    from the internet would fail there."""
    unshare = shutil.which("unshare")
    assert unshare, "util-linux's unshare is part of every Debian system"
    script = tmp_path / "validate_all.py"
    script.write_text(
        "import sys, yaml, kubernetes_validate\n"
        "count = 0\n"
        "for name in sys.argv[1:]:\n"
        "    for doc in yaml.safe_load_all(open(name)):\n"
        "        if doc:\n"
        f"            kubernetes_validate.validate(doc, {KUBERNETES_VERSION!r}, strict=True)\n"
        "            count += 1\n"
        "print(count)\n"
    )
    files = [str(K8S / name) for name in kustomization()["resources"]]
    result = subprocess.run(
        [unshare, "--net", sys.executable, str(script), *files],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == len(manifests())


@pytest.mark.parametrize("name", ["review-queue", "queue-workers", "admin-web"])
def test_each_workload_is_locked_down(name: str) -> None:
    workload = next(doc for doc in workloads() if doc["metadata"]["name"] == name)
    pod = workload["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "hostNetwork" not in pod and "hostPID" not in pod
    for container in pod["containers"]:
        security = container["securityContext"]
        assert security["runAsNonRoot"] is True
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]) & set(resources["limits"])


def test_no_secret_value_is_written_into_a_manifest() -> None:
    seen = 0
    for workload in workloads():
        for container in workload["spec"]["template"]["spec"]["containers"]:
            for variable in container.get("env", []):
                if any(word in variable["name"] for word in SECRET_ENV):
                    assert "value" not in variable, variable["name"]
                    assert "secretKeyRef" in variable["valueFrom"], variable["name"]
                    seen += 1
    assert seen >= 6  # database URL x3, two secret keys, two hub tokens
    for secret in load("secrets.yaml.example"):
        for value in secret["stringData"].values():
            assert "REPLACE-ME" in value
    hub = values()["hub"]
    assert "password" not in hub["db"]
    url = urlsplit(hub["db"]["url"])
    assert url.username == "jupyterhub" and url.password is None
    assert hub["extraEnv"]["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "enclave-hub-db"
    assert "secretKeyRef" in hub["extraEnv"]["ENCLAVE_DATABASE_URL"]["valueFrom"]


def test_the_extracts_claim_and_the_queues_mount_are_read_only() -> None:
    claims = {
        doc["metadata"]["name"]: doc
        for doc in manifests()
        if doc["kind"] == "PersistentVolumeClaim"
    }
    assert claims["enclave-extracts"]["spec"]["accessModes"] == ["ReadOnlyMany"]
    assert {"enclave-work", "enclave-queue-blobs", "enclave-released"} <= set(claims)
    queue = next(doc for doc in workloads() if doc["metadata"]["name"] == "review-queue")
    pod = queue["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["extracts"]["persistentVolumeClaim"]["readOnly"] is True
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["extracts"]["readOnly"] is True
    assert "work" not in volumes  # the queue web never writes into projects


def test_the_chart_values_close_the_charts_open_defaults() -> None:
    chart = values()
    assert chart["hub"]["config"]["JupyterHub"]["admin_access"] is False
    assert chart["hub"]["allowNamedServers"] is True
    assert chart["singleuser"]["storage"]["type"] == "none"
    for netpol in (
        chart["hub"]["networkPolicy"],
        chart["proxy"]["chp"]["networkPolicy"],
        chart["singleuser"]["networkPolicy"],
    ):
        rules = netpol["egressAllowRules"]
        assert netpol["enabled"] is True
        assert not rules["nonPrivateIPs"] and not rules["privateIPs"]
        assert not rules["cloudMetadataServer"] and not rules["dnsPortsCloudMetadataServer"]
        assert not rules["dnsPortsPrivateIPs"]
    # The DNS decision: sessions get no resolver and reach the hub by its Service IP.
    assert (
        chart["singleuser"]["networkPolicy"]["egressAllowRules"]["dnsPortsKubeSystemNamespace"]
        is False
    )
    spawner = chart["hub"]["extraConfig"]["enclave-spawner"]
    assert "hub_connect_url" in spawner and "HUB_SERVICE_HOST" in spawner
    assert chart["fullnameOverride"] == ""  # so the hub's Service is "hub": HUB_SERVICE_HOST
    cull = chart["cull"]
    assert (cull["enabled"], cull["timeout"], cull["every"]) == (True, 3600, 600)
    assert chart["hub"]["services"]["review-queue"]["url"] == "http://review-queue:8100"


# --- what the policies mean -------------------------------------------------------------------


def our_pods() -> dict[str, Pod]:
    """The enclave's pods with the labels their Deployments give them."""
    addresses = {
        "review-queue": "10.244.3.30",
        "queue-workers": "10.244.3.31",
        "admin-web": "10.244.3.32",
    }
    pods = {}
    for workload in workloads():
        name = workload["metadata"]["name"]
        template = workload["spec"]["template"]
        ports = {
            port["name"]: port["containerPort"]
            for container in template["spec"]["containers"]
            for port in container.get("ports", [])
        }
        pods[name] = Pod(name, "enclave", template["metadata"]["labels"], addresses[name], ports)
    return pods


PODS = {
    **chart_pods(),
    **our_pods(),
    "kube-dns": Pod("coredns", "kube-system", {"k8s-app": "kube-dns"}, "10.244.0.2", {"dns": 53}),
    "ingress": Pod("ingress-nginx", "ingress-nginx", {"app": "ingress-nginx"}, "10.244.0.3"),
    "intruder": Pod(
        "intruder", "other", {"hub.jupyter.org/network-access-hub": "true"}, "10.244.9.9"
    ),
}


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    policies = [("enclave", policy) for policy in chart_policies(values())]
    policies += [("enclave", doc) for doc in load("networkpolicies.yaml")]
    return Cluster.of(policies, ["enclave", "kube-system", "ingress-nginx", "other"])


SESSION = PODS["singleuser"]

ATTACKS = [
    ("session to PostgreSQL", SESSION, POSTGRES, 5432, "TCP"),
    ("session to the internet", SESSION, INTERNET, 443, "TCP"),
    ("session DNS to a public resolver", SESSION, RESOLVER, 53, "UDP"),
    ("session DNS over TCP to a public resolver", SESSION, RESOLVER, 53, "TCP"),
    ("session DNS to cluster DNS (tunnelling)", SESSION, PODS["kube-dns"], 53, "UDP"),
    ("session to the cloud metadata server", SESSION, METADATA, 80, "TCP"),
    ("session to the node network", SESSION, NODE_NETWORK, 22, "TCP"),
    ("session to the Kubernetes API", SESSION, API_SERVER, 443, "TCP"),
    ("session to the queue directly", SESSION, PODS["review-queue"], 8100, "TCP"),
    ("session to the admin web", SESSION, PODS["admin-web"], 8200, "TCP"),
    ("session to the proxy's API", SESSION, PODS["proxy"], 8001, "TCP"),
    ("session to another session", SESSION, SESSION, 8888, "TCP"),
    ("another namespace to the queue", PODS["intruder"], PODS["review-queue"], 8100, "TCP"),
    ("another namespace to the hub", PODS["intruder"], PODS["hub"], 8081, "TCP"),
    ("the ingress controller to the queue", PODS["ingress"], PODS["review-queue"], 8100, "TCP"),
    ("the queue to the internet", PODS["review-queue"], INTERNET, 443, "TCP"),
    ("the workers to the internet", PODS["queue-workers"], INTERNET, 443, "TCP"),
    ("the workers to a session", PODS["queue-workers"], SESSION, 8888, "TCP"),
    ("the admin web to the internet", PODS["admin-web"], INTERNET, 443, "TCP"),
    ("the hub to the internet", PODS["hub"], INTERNET, 443, "TCP"),
    ("the hub to the metadata server", PODS["hub"], METADATA, 80, "TCP"),
    ("the proxy to the internet", PODS["proxy"], INTERNET, 443, "TCP"),
    ("the proxy to PostgreSQL", PODS["proxy"], POSTGRES, 5432, "TCP"),
    ("the user scheduler to the internet", PODS["user-scheduler"], INTERNET, 443, "TCP"),
]

NEEDED = [
    ("session to the hub's API", SESSION, PODS["hub"], 8081, "TCP"),
    ("session to the proxy (the queue's API via /services/)", SESSION, PODS["proxy"], 8000, "TCP"),
    ("proxy to a session", PODS["proxy"], SESSION, 8888, "TCP"),
    ("hub to a session", PODS["hub"], SESSION, 8888, "TCP"),
    ("hub to the proxy's API", PODS["hub"], PODS["proxy"], 8001, "TCP"),
    ("proxy to the hub", PODS["proxy"], PODS["hub"], 8081, "TCP"),
    ("proxy to the queue", PODS["proxy"], PODS["review-queue"], 8100, "TCP"),
    ("proxy resolves the queue's name", PODS["proxy"], PODS["kube-dns"], 53, "UDP"),
    ("browser to the proxy over TLS", INTERNET, PODS["proxy"], 8443, "TCP"),
    ("hub to PostgreSQL", PODS["hub"], POSTGRES, 5432, "TCP"),
    ("hub to the Kubernetes API", PODS["hub"], API_SERVER, 443, "TCP"),
    ("hub to the identity provider", PODS["hub"], IDP, 443, "TCP"),
    ("queue to PostgreSQL", PODS["review-queue"], POSTGRES, 5432, "TCP"),
    ("queue to the hub (OAuth)", PODS["review-queue"], PODS["hub"], 8081, "TCP"),
    ("workers to PostgreSQL", PODS["queue-workers"], POSTGRES, 5432, "TCP"),
    ("admin web to PostgreSQL", PODS["admin-web"], POSTGRES, 5432, "TCP"),
    ("admin web to the hub (groups)", PODS["admin-web"], PODS["hub"], 8081, "TCP"),
    ("ingress controller to the admin web", PODS["ingress"], PODS["admin-web"], 8200, "TCP"),
    ("user scheduler to the Kubernetes API", PODS["user-scheduler"], API_SERVER, 6443, "TCP"),
]


@pytest.mark.parametrize(
    ("attack", "source", "target", "port", "protocol"), ATTACKS, ids=[a[0] for a in ATTACKS]
)
def test_the_policies_deny_the_attack(
    cluster: Cluster, attack: str, source: Pod | Host, target: Pod | Host, port: int, protocol: str
) -> None:
    assert not cluster.allows(source, target, port, protocol), attack


@pytest.mark.parametrize(
    ("flow", "source", "target", "port", "protocol"), NEEDED, ids=[n[0] for n in NEEDED]
)
def test_the_policies_allow_the_enclaves_flows(
    cluster: Cluster, flow: str, source: Pod | Host, target: Pod | Host, port: int, protocol: str
) -> None:
    assert cluster.allows(source, target, port, protocol), flow


def test_the_charts_defaults_would_let_a_session_out() -> None:
    """The evaluator and the chart model see the danger the values close: with the chart's
    default session rules, the internet and DNS tunnelling are open."""
    defaults = values()
    defaults["singleuser"]["networkPolicy"] = {"enabled": True}
    open_cluster = Cluster.of(
        [("enclave", p) for p in chart_policies(defaults)]
        + [("enclave", doc) for doc in load("networkpolicies.yaml")],
        ["enclave", "kube-system", "ingress-nginx", "other"],
    )
    assert open_cluster.allows(SESSION, INTERNET, 443)
    assert open_cluster.allows(SESSION, PODS["kube-dns"], 53, "UDP")
    assert open_cluster.allows(SESSION, POSTGRES, 5432)  # a database on a public address too
    assert not open_cluster.allows(SESSION, NODE_NETWORK, 22)  # only private ranges stay closed


def test_without_the_default_deny_the_workers_would_be_open() -> None:
    """Our default deny is what closes pods that no other policy selects."""
    policies = [
        doc for doc in load("networkpolicies.yaml") if doc["metadata"]["name"] != "queue-workers"
    ]
    cluster = Cluster.of([("enclave", p) for p in policies], ["enclave"])
    assert not cluster.allows(PODS["queue-workers"], INTERNET, 443)
    without_deny = [p for p in policies if p["metadata"]["name"] != "default-deny"]
    assert Cluster.of([("enclave", p) for p in without_deny], ["enclave"]).allows(
        PODS["queue-workers"], INTERNET, 443
    )


CHART_FILES_VOLUME = {"name": "files", "secret": {"secretName": "singleuser"}}
CHART_FILES_MOUNT = {"name": "files", "mountPath": "/etc/jupyter/x.json", "subPath": "x"}


class FakeKubeSpawner:
    """What the spawner class needs of KubeSpawner: the chart's traits and a start that
    records the pod it would create."""

    def __init__(self, username: str, name: str) -> None:
        self.volumes: list[dict[str, Any]] = [CHART_FILES_VOLUME]
        self.volume_mounts: list[dict[str, Any]] = [CHART_FILES_MOUNT]
        self.user = types.SimpleNamespace(name=username)
        self.name = name

    async def start(self) -> dict[str, Any]:
        return {"volumes": self.volumes, "volume_mounts": self.volume_mounts}


class FakePolicy:
    """Allows rae into p1 only."""

    def decide(self, username: str, project: str) -> SessionDecision:
        if (username, project) != ("rae", "p1"):
            return refused(username, project, "membership")
        root = Path("/srv/enclave/projects/p1")
        return SessionDecision(
            allowed=True,
            username=username,
            project=project,
            tier="2",
            limits=Limits(memory_bytes=2 * 1024**3, cpus=1.0, pids=256),
            data=root / "data",
            home=root / "home" / username,
            outbox=root / "outbox" / username,
        )


@pytest.fixture
def hub_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Config, dict[str, Any]]]:
    """Run the chart's extraConfig as the hub would, with the Service variables Kubernetes
    sets in the hub's pod (KubeSpawner itself is replaced: it is not installed here)."""
    kubespawner = types.ModuleType("kubespawner")
    kubespawner.KubeSpawner = FakeKubeSpawner  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "kubespawner", kubespawner)
    monkeypatch.setenv("HUB_SERVICE_HOST", "10.96.12.34")
    monkeypatch.setenv("HUB_SERVICE_PORT", "8081")
    monkeypatch.setenv("ENCLAVE_DATA_DIR", str(tmp_path))
    database = f"sqlite:///{tmp_path / 'enclave.sqlite3'}"
    monkeypatch.setenv("ENCLAVE_DATABASE_URL", database)
    engine = db.make_engine(database)
    db.upgrade(engine)
    engine.dispose()
    config = Config()
    config.JupyterHub.services = []  # as the chart's jupyterhub_config.py leaves them
    config.JupyterHub.load_roles = []
    namespace: dict[str, Any] = {"c": config}
    exec(values()["hub"]["extraConfig"]["enclave-spawner"], namespace)
    yield config, namespace
    namespace["CONTEXT"].close()


def test_the_hub_config_gives_sessions_the_hubs_address_not_its_name(
    hub_config: tuple[Config, dict[str, Any]],
) -> None:
    config, _ = hub_config
    assert config.JupyterHub.spawner_class.__name__ == "EnclaveKubeSpawner"
    assert config.EnclaveKubeSpawner.hub_connect_url == "http://10.96.12.34:8081"
    enforcer = next(s for s in config.JupyterHub.services if s["name"] == "access-enforcer")
    assert enforcer["command"][-1] == "--url=http://127.0.0.1:8081/hub/api"
    assert {"name": "access-enforcer"}.items() <= config.JupyterHub.load_roles[0].items()


def test_the_spawner_asks_the_policy_and_keeps_the_charts_files(
    hub_config: tuple[Config, dict[str, Any]],
) -> None:
    config, namespace = hub_config
    namespace["POLICY"] = FakePolicy()
    spawner_class = config.JupyterHub.spawner_class
    spawner = spawner_class("rae", "p1")
    for _ in range(2):  # a restarted server gets the same pod, not doubled volumes
        pod = asyncio.run(spawner.start())
        assert [v["name"] for v in pod["volumes"]] == ["files", "extract", "work"]
        mounts = {m["mountPath"]: m for m in pod["volume_mounts"]}
        assert mounts["/etc/jupyter/x.json"] == CHART_FILES_MOUNT
        assert mounts["/home/jovyan/data"]["readOnly"] is True
        assert len(pod["volume_mounts"]) == 4
    with pytest.raises(SpawnException) as refusal:
        asyncio.run(spawner_class("rae", "p2").start())
    assert refusal.value.status_code == 403
    with pytest.raises(SpawnException, match="from a project"):
        asyncio.run(spawner_class("rae", "").start())
