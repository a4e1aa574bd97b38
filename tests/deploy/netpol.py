"""A small evaluator of Kubernetes NetworkPolicies (networking.k8s.io/v1), for tests.

It answers whether a connection (source, destination, port, protocol) is allowed by a set of
policies, with the API's semantics: a pod selected by no policy of a direction is open in that
direction; a selected pod admits what any selecting policy's rule allows; a connection needs the
source's egress and the destination's ingress. ``ipBlock`` is matched against pods' addresses as
well as outside ones, which some CNIs do and which can only make the evaluator more permissive
than a cluster, never less: a denial it reports holds on every CNI.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Policy = Mapping[str, Any]


@dataclass(frozen=True)
class Pod:
    """A pod: its namespace, labels, address and named container ports."""

    name: str
    namespace: str
    labels: Mapping[str, str]
    ip: str
    ports: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Host:
    """An address outside the cluster's pods (a database, the internet, the API server)."""

    name: str
    ip: str


Endpoint = Pod | Host


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether a label selector matches ``labels`` (an empty selector matches everything)."""
    if selector is None:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


@dataclass(frozen=True)
class Cluster:
    """The policies in force and the labels of each namespace."""

    policies: tuple[tuple[str, Policy], ...]  # (namespace, policy)
    namespace_labels: Mapping[str, Mapping[str, str]]

    @classmethod
    def of(cls, policies: Iterable[tuple[str, Policy]], namespaces: Iterable[str]) -> Cluster:
        labels = {name: {"kubernetes.io/metadata.name": name} for name in namespaces}
        return cls(tuple(policies), labels)

    def allows(self, source: Endpoint, target: Endpoint, port: int, protocol: str = "TCP") -> bool:
        """Whether ``source`` may open a connection to ``target`` on ``port``/``protocol``."""
        return self._direction(source, "Egress", target, port, protocol) and self._direction(
            target, "Ingress", source, port, protocol
        )

    def _direction(
        self, pod: Endpoint, kind: str, peer: Endpoint, port: int, protocol: str
    ) -> bool:
        if isinstance(pod, Host):
            return True  # no policy governs an outside host
        selecting = [
            spec
            for namespace, policy in self.policies
            if namespace == pod.namespace
            for spec in [policy["spec"]]
            if kind in _policy_types(spec) and selects(spec.get("podSelector") or {}, pod.labels)
        ]
        if not selecting:
            return True
        destination = peer if kind == "Egress" else pod
        rules = [rule for spec in selecting for rule in spec.get(kind.lower()) or []]
        peers_key = "to" if kind == "Egress" else "from"
        return any(
            self._peers_match(rule.get(peers_key), peer, pod.namespace)
            and _ports_match(rule.get("ports"), port, protocol, destination)
            for rule in rules
        )

    def _peers_match(self, peers: list[Any] | None, peer: Endpoint, namespace: str) -> bool:
        if not peers:
            return True
        return any(self._peer_matches(item, peer, namespace) for item in peers)

    def _peer_matches(self, item: Mapping[str, Any], peer: Endpoint, namespace: str) -> bool:
        if "ipBlock" in item:
            return _in_block(item["ipBlock"], peer.ip)
        if isinstance(peer, Host):
            return False  # selectors name pods only
        if "namespaceSelector" in item:
            peer_namespace = self.namespace_labels.get(peer.namespace, {})
            if not selects(item["namespaceSelector"], peer_namespace):
                return False
        elif peer.namespace != namespace:
            return False
        return selects(item.get("podSelector"), peer.labels)


def _policy_types(spec: Mapping[str, Any]) -> list[str]:
    if "policyTypes" in spec:
        return list(spec["policyTypes"])
    return ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]


def _in_block(block: Mapping[str, Any], ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    if address not in ipaddress.ip_network(block["cidr"]):
        return False
    return not any(address in ipaddress.ip_network(cidr) for cidr in block.get("except") or [])


def _ports_match(ports: list[Any] | None, port: int, protocol: str, destination: Endpoint) -> bool:
    if not ports:
        return True
    for entry in ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        wanted = entry.get("port")
        if wanted is None:
            return True
        if isinstance(wanted, str):
            if not isinstance(destination, Pod) or wanted not in destination.ports:
                continue
            wanted = destination.ports[wanted]
        if wanted <= port <= entry.get("endPort", wanted):
            return True
    return False
