"""Nodes and EndpointSlices as the ADC planner needs them, kept current by informers.

A Node event requeues every Service only when the set of eligible nodes (Ready, not excluded,
with an address) changes, so node heartbeats cost nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from lbctl.adc.plan import Endpoint, Node, endpoints_from_slices
from lbctl.kube.client import JSON
from lbctl.kube.informer import Informer, object_key

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class Backends:
    """Nodes and EndpointSlices as the ADC planner needs them, kept current by informers."""

    def __init__(
        self,
        nodes: Informer,
        slices: Informer,
        on_nodes_changed: Callable[[], None],
        on_endpoints_changed: Callable[[str], None],
    ) -> None:
        self._nodes = nodes
        self._slices = slices
        self._by_service: dict[str, set[str]] = {}
        self._eligible: frozenset[str] = frozenset()
        self._on_nodes_changed = on_nodes_changed
        self._on_endpoints_changed = on_endpoints_changed
        nodes.add_handler(self._node_event)
        slices.add_handler(self._slice_event)

    def nodes(self) -> list[Node]:
        return [Node.from_raw(raw) for _, raw in self._nodes.items()]

    def endpoints(self, service: str) -> list[Endpoint]:
        slices = (self._slices.get(k) for k in self._by_service.get(service, ()))
        return endpoints_from_slices(s for s in slices if s is not None)

    def _node_event(self, kind: str, old: JSON | None, new: JSON | None) -> None:
        eligible = frozenset(f"{n.name}={n.address}" for n in self.nodes() if n.eligible)
        if eligible != self._eligible:
            self._eligible = eligible
            self._on_nodes_changed()

    def _slice_event(self, kind: str, old: JSON | None, new: JSON | None) -> None:
        obj = new if new is not None else old
        if obj is None:
            return
        meta = obj["metadata"]
        service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if service is None:
            return
        owner = f"{meta['namespace']}/{service}"
        keys = self._by_service.setdefault(owner, set())
        if new is None:
            keys.discard(object_key(obj))
        else:
            keys.add(object_key(obj))
        self._on_endpoints_changed(owner)
