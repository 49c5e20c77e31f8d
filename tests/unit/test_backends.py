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
