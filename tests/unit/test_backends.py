"""Node events as the ADC sees them: only a change of the eligible set requeues Services."""

from __future__ import annotations

from typing import Any, cast

from lbctl.kube.client import JSON
from lbctl.kube.informer import Handler, Informer
from lbctl.reconcile.backends import Backends


class Handlers:
    """Stands in for an informer: Backends only registers its handler on it."""

    def __init__(self) -> None:
        self.handlers: list[Handler] = []

    def add_handler(self, handler: Handler) -> None:
        self.handlers.append(handler)

    def emit(self, kind: str, old: JSON | None, new: JSON | None) -> None:
        for handler in self.handlers:
            handler(kind, old, new)


def node(name: str, ip: str, *, ready: bool = True, heartbeat: str = "t0") -> JSON:
    return {
        "metadata": {"name": name},
        "status": {
            "addresses": [{"type": "InternalIP", "address": ip}],
            "conditions": [
                {"type": "Ready", "status": "True" if ready else "False",
                 "lastHeartbeatTime": heartbeat},
            ],
        },
    }  # fmt: skip


def backends() -> tuple[Backends, Handlers, list[int]]:
    nodes, slices, changes = Handlers(), Handlers(), [0]

    def changed() -> None:
        changes[0] += 1

    found = Backends(cast(Informer, nodes), cast(Informer, slices), changed, lambda key: None)
    return found, nodes, changes


def test_heartbeats_change_nothing_and_readiness_and_addresses_do() -> None:
    found, nodes, changes = backends()
    nodes.emit("ADDED", None, node("a", "10.0.0.1"))
    nodes.emit("ADDED", None, node("b", "10.0.0.2", ready=False))
    assert changes == [1]  # b is not eligible: only a's arrival counts
    listed = found.nodes()
    assert sorted((n.name, n.eligible) for n in listed) == [("a", True), ("b", False)]

    nodes.emit("MODIFIED", node("a", "10.0.0.1"), node("a", "10.0.0.1", heartbeat="t1"))
    assert changes == [1]
    assert found.nodes() is listed, "the planner's list is kept while no Node's view changes"

    nodes.emit("MODIFIED", node("b", "10.0.0.2", ready=False), node("b", "10.0.0.2"))
    nodes.emit("MODIFIED", node("a", "10.0.0.1"), node("a", "10.0.0.9"))
    assert changes == [3]
    assert sorted((n.name, n.address) for n in found.nodes()) == [
        ("a", "10.0.0.9"), ("b", "10.0.0.2"),
    ]  # fmt: skip

    nodes.emit("DELETED", node("b", "10.0.0.2"), None)
    assert changes == [4]
    assert [n.name for n in found.nodes()] == ["a"]


def test_a_services_slice_index_shrinks_when_its_last_slice_goes() -> None:
    found, _, _ = backends()
    slices = cast(Any, found)._slices
    slice_ = {"metadata": {"name": "web-x", "namespace": "ns",
                           "labels": {"kubernetes.io/service-name": "web"}}}  # fmt: skip
    slices.emit("ADDED", None, slice_)
    assert cast(Any, found)._by_service == {"ns/web": {"ns/web-x"}}
    slices.emit("DELETED", slice_, None)
    assert cast(Any, found)._by_service == {}


def full_node(name: str, *, ready: str, excluded: str | None) -> JSON:
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
    if excluded is not None:
        labels["node.kubernetes.io/exclude-from-external-load-balancers"] = excluded
    return {
        "metadata": {"name": name, "uid": "u", "resourceVersion": "9", "labels": labels,
                     "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
        "spec": {"podCIDR": "10.244.0.0/24"},
        "status": {
            "addresses": [{"type": "Hostname", "address": name},
                          {"type": "ExternalIP", "address": "192.0.2.7"},
                          {"type": "InternalIP", "address": "10.0.0.7"}],
            "conditions": [{"type": "MemoryPressure", "status": "False", "message": "ok" * 40},
                           {"type": "Ready", "status": ready, "message": "kubelet ready"}],
            "images": [{"names": [f"registry/image-{i}:v1"], "sizeBytes": i} for i in range(50)],
        },
    }  # fmt: skip


def full_slice() -> JSON:
    return {
        "metadata": {"name": "web-abc", "namespace": "ns", "resourceVersion": "5",
                     "labels": {"kubernetes.io/service-name": "web",
                                "endpointslice.kubernetes.io/managed-by": "x"},
                     "ownerReferences": [{"kind": "Service", "name": "web"}]},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"},
                  {"name": "dns", "port": 53, "protocol": "UDP"}],
        "endpoints": [
            {"addresses": ["10.1.0.1", "10.1.0.9"], "conditions": {"ready": True},
             "nodeName": "n1", "zone": "z", "targetRef": {"kind": "Pod", "name": "p1"}},
            {"addresses": ["10.1.0.2"], "conditions": {"ready": False, "serving": True},
             "targetRef": {"kind": "Pod", "name": "p2"}},
            {"addresses": ["10.1.0.3"], "hints": {"forZones": [{"name": "z"}]}},
            *({"addresses": [f"10.1.1.{i}"], "conditions": {"ready": True, "serving": True,
                                                           "terminating": False},
               "nodeName": f"node-{i}", "zone": "zone-a",
               "targetRef": {"kind": "Pod", "namespace": "ns", "name": f"web-7d9c-{i}",
                             "uid": f"5c0f5a52-8f53-4b1e-9a5e-{i:012d}"}} for i in range(20)),
        ],
    }  # fmt: skip


def test_the_trimmed_node_and_slice_plan_the_same_and_are_smaller() -> None:
    """What the informers keep of a Node and an EndpointSlice gives the planner exactly what
    the whole objects give, in a fraction of the size."""
    import json

    from lbctl.adc.plan import Node, endpoints_from_slices
    from lbctl.reconcile.backends import node_as_planned, slice_as_planned

    for ready in ("True", "False"):
        for excluded in (None, "true", "false"):
            raw = full_node("n1", ready=ready, excluded=excluded)
            trimmed = node_as_planned(raw)
            assert Node.from_raw(trimmed) == Node.from_raw(raw)
            assert len(json.dumps(trimmed)) * 5 < len(json.dumps(raw))
    raw_slice = full_slice()
    trimmed_slice = slice_as_planned(raw_slice)
    assert endpoints_from_slices([trimmed_slice]) == endpoints_from_slices([raw_slice])
    assert len(endpoints_from_slices([raw_slice])) == 44  # 22 ready endpoints, two ports
    assert trimmed_slice["metadata"]["labels"] == {"kubernetes.io/service-name": "web"}
    assert len(json.dumps(trimmed_slice)) * 4 < len(json.dumps(raw_slice))
