"""What the Zero to JupyterHub chart (4.x) makes of our values, for the policy tests: its
NetworkPolicies for the hub, the proxy and the sessions, and the labels and ports of its pods.

The chart is not installed here (helm and the chart are not in any package registry we use), so
this restates the chart's documented policy templates: the flows it always opens, and the rules
that ``networkPolicy.egressAllowRules`` switches on, with the chart's defaults where our values
say nothing. A key our values forget therefore falls back to the chart's permissive default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.deploy.netpol import Pod

METADATA_IP = "169.254.169.254"
PRIVATE = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
# the chart's defaults for egressAllowRules (hub and proxy: everything; sessions: no private IPs
# and no metadata server, but the internet and DNS)
OPEN_DEFAULTS = dict.fromkeys(
    (
        "cloudMetadataServer",
        "dnsPortsCloudMetadataServer",
        "dnsPortsKubeSystemNamespace",
        "dnsPortsPrivateIPs",
        "nonPrivateIPs",
        "privateIPs",
    ),
    True,
)
SINGLEUSER_DEFAULTS = {**OPEN_DEFAULTS, "cloudMetadataServer": False, "privateIPs": False}


def component(name: str) -> dict[str, Any]:
    return {"matchLabels": {"component": name, "app": "jupyterhub", "release": "enclave"}}


def chart_pods() -> dict[str, Pod]:
    """The chart's pods in the namespace ``enclave``, with the labels the chart gives them."""
    base = {"app": "jupyterhub", "release": "enclave"}
    return {
        "hub": Pod(
            "hub",
            "enclave",
            {
                **base,
                "component": "hub",
                "hub.jupyter.org/network-access-proxy-api": "true",
                "hub.jupyter.org/network-access-proxy-http": "true",
                "hub.jupyter.org/network-access-singleuser": "true",
            },
            "10.244.1.10",
            {"http": 8081},
        ),
        "proxy": Pod(
            "proxy",
            "enclave",
            {
                **base,
                "component": "proxy",
                "hub.jupyter.org/network-access-hub": "true",
                "hub.jupyter.org/network-access-singleuser": "true",
            },
            "10.244.1.11",
            {"https": 8443, "http": 8000, "api": 8001},
        ),
        "singleuser": Pod(
            "jupyter-rae--p1",
            "enclave",
            {
                **base,
                "component": "singleuser-server",
                "hub.jupyter.org/network-access-hub": "true",  # singleuser.extraLabels
            },
            "10.244.2.20",
            {"notebook-port": 8888},
        ),
        "user-scheduler": Pod(
            "user-scheduler", "enclave", {**base, "component": "user-scheduler"}, "10.244.1.12"
        ),
    }


def _egress_rules(netpol: Mapping[str, Any], defaults: Mapping[str, bool]) -> list[Any]:
    allow = {**defaults, **(netpol.get("egressAllowRules") or {})}
    rules: list[Any] = []
    dns_peers: list[Any] = []
    if allow["dnsPortsCloudMetadataServer"]:
        dns_peers.append({"ipBlock": {"cidr": f"{METADATA_IP}/32"}})
    if allow["dnsPortsKubeSystemNamespace"]:
        dns_peers.append(
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}
        )
    if allow["dnsPortsPrivateIPs"]:
        dns_peers.extend({"ipBlock": {"cidr": cidr}} for cidr in PRIVATE)
    if dns_peers:
        ports = [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
        rules.append({"to": dns_peers, "ports": ports})
    if allow["nonPrivateIPs"]:
        block = {"cidr": "0.0.0.0/0", "except": [*PRIVATE, f"{METADATA_IP}/32"]}
        rules.append({"to": [{"ipBlock": block}]})
    if allow["privateIPs"]:
        rules.append({"to": [{"ipBlock": {"cidr": cidr}} for cidr in PRIVATE]})
    if allow["cloudMetadataServer"]:
        rules.append({"to": [{"ipBlock": {"cidr": f"{METADATA_IP}/32"}}]})
    rules.extend(netpol.get("egress") or [])
    return rules


def _from_label(label: str) -> list[Any]:
    return [{"podSelector": {"matchLabels": {label: "true"}}}]


def _open_ports(netpol: Mapping[str, Any], default: list[Any]) -> list[Any]:
    ports = netpol.get("allowedIngressPorts", default)
    return [{"ports": [{"port": port} for port in ports]}] if ports else []


def chart_policies(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The NetworkPolicies the chart renders from ``values`` (those that are enabled)."""
    policies = []
    hub = values.get("hub", {}).get("networkPolicy", {})
    if hub.get("enabled", True):
        ingress = [
            *_open_ports(hub, []),
            {
                "ports": [{"port": "http"}],
                "from": _from_label("hub.jupyter.org/network-access-hub"),
            },
            *(hub.get("ingress") or []),
        ]
        egress = [
            {"to": [{"podSelector": component("proxy")}], "ports": [{"port": 8001}]},
            {"to": [{"podSelector": component("singleuser-server")}], "ports": [{"port": 8888}]},
            *_egress_rules(hub, OPEN_DEFAULTS),
        ]
        policies.append(_policy("hub", component("hub"), ingress, egress))
    proxy_values = values.get("proxy", {})
    proxy = proxy_values.get("chp", {}).get("networkPolicy", {})
    if proxy.get("enabled", True):
        https = proxy_values.get("https", {})
        own_tls = https.get("enabled") and https.get("type") in ("manual", "secret")
        ingress = [
            *_open_ports(proxy, ["http", "https"]),
            {
                "ports": [{"port": "http"}, *([{"port": "https"}] if own_tls else [])],
                "from": _from_label("hub.jupyter.org/network-access-proxy-http"),
            },
            {
                "ports": [{"port": "api"}],
                "from": _from_label("hub.jupyter.org/network-access-proxy-api"),
            },
            *(proxy.get("ingress") or []),
        ]
        egress = [
            {"to": [{"podSelector": component("hub")}], "ports": [{"port": 8081}]},
            {"to": [{"podSelector": component("singleuser-server")}], "ports": [{"port": 8888}]},
            *_egress_rules(proxy, OPEN_DEFAULTS),
        ]
        policies.append(_policy("proxy", component("proxy"), ingress, egress))
    user = values.get("singleuser", {}).get("networkPolicy", {})
    if user.get("enabled", True):
        ingress = [
            *_open_ports(user, []),
            {
                "ports": [{"port": "notebook-port"}],
                "from": _from_label("hub.jupyter.org/network-access-singleuser"),
            },
            *(user.get("ingress") or []),
        ]
        egress = [
            {"to": [{"podSelector": component("hub")}], "ports": [{"port": 8081}]},
            {"to": [{"podSelector": component("proxy")}], "ports": [{"port": 8000}]},
            {
                "to": [{"podSelector": component("autohttps")}],
                "ports": [{"port": 8080}, {"port": 8443}],
            },
            *_egress_rules(user, SINGLEUSER_DEFAULTS),
        ]
        policies.append(_policy("singleuser", component("singleuser-server"), ingress, egress))
    return policies


def _policy(
    name: str, selector: dict[str, Any], ingress: list[Any], egress: list[Any]
) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name},
        "spec": {
            "podSelector": selector,
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    }
