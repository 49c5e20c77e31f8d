"""Nodes and EndpointSlices as the ADC planner needs them, kept current by informers.

A Node event requeues every Service only when the set of eligible nodes (Ready, not excluded,
with an address) changes, so node heartbeats cost nothing; an event costs O(1) in the number of
Nodes (only that Node is read again), and the planner's Node list is built once per change.
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
        self._views: dict[str, Node] = {}
        """Every Node as the planner reads it, by name."""
        self._listed: list[Node] | None = None
        """``_views`` as a list, until a Node's view changes."""
        self._on_nodes_changed = on_nodes_changed
        self._on_endpoints_changed = on_endpoints_changed
        nodes.add_handler(self._node_event)
        slices.add_handler(self._slice_event)

    def nodes(self) -> list[Node]:
        if self._listed is None:
            self._listed = list(self._views.values())
        return self._listed

    def endpoints(self, service: str) -> list[Endpoint]:
        slices = (self._slices.get(k) for k in self._by_service.get(service, ()))
        return endpoints_from_slices(s for s in slices if s is not None)

    def _node_event(self, kind: str, old: JSON | None, new: JSON | None) -> None:
        obj = new if new is not None else old
        if obj is None:
            return
        name = str(obj["metadata"]["name"])
        before = self._views.pop(name, None)
        after = Node.from_raw(new) if new is not None else None
        if after is not None:
            self._views[name] = after
        if before == after:
            return
        self._listed = None
        if _serves(before) != _serves(after):
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
            if not keys:
                del self._by_service[owner]
        else:
            keys.add(object_key(obj))
        self._on_endpoints_changed(owner)


def _serves(node: Node | None) -> tuple[str, str | None] | None:
    """What of a Node the ADC's members depend on: its name and address while it is eligible."""
    return (node.name, node.address) if node is not None and node.eligible else None
