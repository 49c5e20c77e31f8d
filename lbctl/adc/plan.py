"""The ADC objects a Service should have: pure, from the Service, its nodes and endpoints.

Per Service port: an lb vserver on the VIP, a service group, its members (NodeIP:NodePort of
every eligible node, or pod IP:port from EndpointSlices), the binding between the two and, for
``externalTrafficPolicy: Local`` or a monitor annotation, a monitor bound to the group.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lbctl.adc.annotations import (
    LBVSERVER_ANNOTATION,
    MONITOR_ANNOTATION,
    SERVICEGROUP_ANNOTATION,
    AnnotationError,
    for_port,
    per_port,
)
from lbctl.adc.names import Owner, PortId, as_owner, object_name, ownership_comment
from lbctl.adc.state import Attrs, Key, State

EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
MEMBERS_ANNOTATION = "lbctl.io/members"
SERVICE_TYPE_ANNOTATION = "service.citrix.com/service-type-"
SERVICE_TYPES = {"TCP": ("TCP", "HTTP", "ANY"), "UDP": ("UDP", "SIP_UDP", "DNS", "ANY")}
UNSUPPORTED_PROTOCOL = "lbctl.io/UnsupportedProtocol"


@dataclass(frozen=True)
class Node:
    name: str
    address: str | None
    ready: bool
    excluded: bool

    @property
    def eligible(self) -> bool:
        return self.ready and not self.excluded and self.address is not None

    @classmethod
    def from_raw(cls, obj: Mapping[str, Any]) -> Node:
        meta = obj.get("metadata") or {}
        status = obj.get("status") or {}
        addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        return cls(
            name=str(meta.get("name")),
            address=addresses.get("InternalIP") or addresses.get("ExternalIP"),
            ready=ready,
            excluded=excluded((meta.get("labels") or {}).get(EXCLUDE_LABEL)),
        )


FALSE_VALUES = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def excluded(label: str | None) -> bool:
    """Whether ``node.kubernetes.io/exclude-from-external-load-balancers`` with this value
    excludes the node: as the Kubernetes service controller since kubernetes/kubernetes#131085,
    a value Go's ``strconv.ParseBool`` reads as false keeps it; true, and any value it cannot
    read (the empty one too), excludes it; no label keeps it."""
    return label is not None and label not in FALSE_VALUES


@dataclass(frozen=True)
class Endpoint:
    address: str
    port: int
    port_name: str
    protocol: str


def endpoints_from_slices(slices: Iterable[Mapping[str, Any]]) -> list[Endpoint]:
    """Ready endpoints of a Service's EndpointSlices, one per (address, port)."""
    found: set[Endpoint] = set()
    for item in slices:
        ports = item.get("ports") or []
        for endpoint in item.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            for address in (endpoint.get("addresses") or [])[:1]:
                for port in ports:
                    if isinstance(port.get("port"), int):
                        found.add(
                            Endpoint(
                                str(address),
                                port["port"],
                                str(port.get("name") or ""),
                                str(port.get("protocol") or "TCP"),
                            )
                        )
    return sorted(found, key=lambda e: (e.port_name, e.address, e.port))


@dataclass
class Plan:
    """Desired objects, and the problems found (per port label, or "*" for the Service)."""

    objects: State = field(default_factory=dict)
    ports: dict[Key, str] = field(default_factory=dict)
    """Object → the port label it serves, to report failures per port."""
    problems: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)

    def add(self, key: Key, attrs: Attrs, label: str) -> None:
        self.objects[key] = attrs
        self.ports[key] = label


def plan_service(
    owner: str | Owner,
    service: Mapping[str, Any],
    addresses: str | Sequence[str],
    nodes: Iterable[Node],
    endpoints: Iterable[Endpoint] = (),
) -> Plan:
    """The desired ADC state of one Service that has ``addresses`` (two when dual-stack:
    an lb vserver on each, both bound to the port's one service group)."""
    if isinstance(addresses, str):
        addresses = [addresses]
    owner = as_owner(owner)
    prefix = owner.prefix
    meta = service.get("metadata") or {}
    spec = service.get("spec") or {}
    annotations: dict[str, str] = dict(meta.get("annotations") or {})
    plan = Plan()
    try:
        smart = {a: per_port(annotations, a) for a in (LBVSERVER_ANNOTATION,
                 SERVICEGROUP_ANNOTATION, MONITOR_ANNOTATION)}  # fmt: skip
    except AnnotationError as err:
        plan.problems["*"] = str(err)
        plan.reasons["*"] = "InvalidAnnotation"
        return plan
    use_pods = (
        annotations.get(MEMBERS_ANNOTATION, "").strip().lower() == "pods"
        or spec.get("allocateLoadBalancerNodePorts") is False
    )
    local = spec.get("externalTrafficPolicy") == "Local"
    eligible = sorted({n.address for n in nodes if n.eligible and n.address})
    pod_endpoints = list(endpoints)
    for index, port in enumerate(spec.get("ports") or []):
        protocol = str(port.get("protocol") or "TCP")
        ident = PortId(meta["namespace"], meta["name"], int(port["port"]), protocol)
        label = ident.label
        wanted = annotations.get(f"{SERVICE_TYPE_ANNOTATION}{index}", protocol).strip().upper()
        if wanted not in SERVICE_TYPES.get(protocol, ()):
            plan.problems[label] = (
                f"port {label}: protocol {protocol} as NetScaler service type {wanted}"
                " is not supported (TCP: TCP, HTTP, ANY; UDP: UDP, SIP_UDP, DNS, ANY)"
            )
            plan.reasons[label] = UNSUPPORTED_PROTOCOL
            continue
        comment = ownership_comment(owner, ident)
        group = object_name(prefix, ident, "sgp")
        for index_of_address, address in enumerate(addresses):
            # The first family's vserver keeps the plain name; a second family's is "lbv6"/"lbv4".
            suffix = "" if index_of_address == 0 else str(ipaddress.ip_address(address).version)
            vserver = object_name(prefix, ident, f"lbv{suffix}")
            plan.add(
                Key("lbvserver", vserver),
                {
                    "servicetype": wanted,
                    "ipv46": address,
                    "port": ident.port,
                    "lbmethod": "LEASTCONNECTION",
                    **_persistence(spec),
                    **for_port(smart[LBVSERVER_ANNOTATION], label),
                    "comment": comment,
                },
                label,
            )
            plan.add(Key("vserver_binding", vserver, (group,)), {}, label)
        plan.add(
            Key("servicegroup", group),
            {
                "servicetype": wanted,
                **for_port(smart[SERVICEGROUP_ANNOTATION], label),
                "comment": comment,
            },
            label,
        )
        if use_pods:
            members = {
                (e.address, e.port)
                for e in pod_endpoints
                if e.port_name == str(port.get("name") or "") and e.protocol == protocol
            }
        elif isinstance(port.get("nodePort"), int):
            members = {(ip, port["nodePort"]) for ip in eligible}
        else:
            members = set()
        for ip, member_port in sorted(members):
            plan.add(Key("member", group, (ip, str(member_port))), {}, label)
        monitor = dict(for_port(smart[MONITOR_ANNOTATION], label))
        health_port = spec.get("healthCheckNodePort")
        if local and not use_pods and isinstance(health_port, int):
            monitor = {"type": "HTTP", "destport": health_port,
                       "httprequest": "GET /healthz", "respcode": ["200"], **monitor}  # fmt: skip
        if monitor:
            monitor.setdefault("type", "TCP" if protocol == "TCP" else "PING")
            name = object_name(prefix, ident, "mon")
            plan.add(Key("lbmonitor", name), {**monitor, "comment": comment}, label)
            plan.add(Key("monitor_binding", group, (name,)), {}, label)
    return plan


def _persistence(spec: Mapping[str, Any]) -> Attrs:
    if spec.get("sessionAffinity") != "ClientIP":
        return {"persistencetype": "NONE"}
    config = (spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}
    seconds = config.get("timeoutSeconds") or 10_800
    return {"persistencetype": "SOURCEIP", "timeout": min(1440, math.ceil(int(seconds) / 60))}
