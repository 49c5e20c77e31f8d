"""Nodes and EndpointSlices as the ADC planner needs them, kept current by informers.

A Node event requeues every Service only when the set of eligible nodes (Ready, not excluded,
with an address) changes, so node heartbeats cost nothing; an event costs O(1) in the number of
Nodes (only that Node is read again), and the planner's Node list is built once per change.
"""

from __future__ import annotations

from collections.abc import Callable

from lbctl.adc.plan import EXCLUDE_LABEL, Endpoint, Node, endpoints_from_slices
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


def node_as_planned(raw: JSON) -> JSON:
    """A Node cut to what ``Node.from_raw`` reads: name, the exclusion label, addresses and the
    Ready condition (a Node's images, other conditions and labels are most of its size)."""
    meta = raw.get("metadata") or {}
    status = raw.get("status") or {}
    excluded = (meta.get("labels") or {}).get(EXCLUDE_LABEL)
    return {
        "metadata": {
            "name": meta.get("name"),
            "resourceVersion": meta.get("resourceVersion"),
            "creationTimestamp": meta.get("creationTimestamp"),
            **({"labels": {EXCLUDE_LABEL: excluded}} if excluded is not None else {}),
        },
        "status": {
            "addresses": [
                a for a in status.get("addresses") or [] if a.get("type") in _NODE_ADDRESSES
            ],
            "conditions": [
                {"type": "Ready", "status": c.get("status")}
                for c in status.get("conditions") or []
                if c.get("type") == "Ready"
            ],
        },
    }


_NODE_ADDRESSES = frozenset({"InternalIP", "ExternalIP"})


def slice_as_planned(raw: JSON) -> JSON:
    """An EndpointSlice cut to what ``endpoints_from_slices`` reads: its Service label, ports,
    and per endpoint its first address and readiness (target references, zones, hints and
    node names are dropped)."""
    meta = raw.get("metadata") or {}
    service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    endpoints = []
    for endpoint in raw.get("endpoints") or []:
        trimmed: JSON = {"addresses": (endpoint.get("addresses") or [])[:1]}
        if (endpoint.get("conditions") or {}).get("ready") is False:
            trimmed["conditions"] = {"ready": False}
        endpoints.append(trimmed)
    return {
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "resourceVersion": meta.get("resourceVersion"),
            "creationTimestamp": meta.get("creationTimestamp"),
            **({"labels": {SERVICE_NAME_LABEL: service}} if service is not None else {}),
        },
        "ports": [
            {k: port[k] for k in ("name", "port", "protocol") if k in port}
            for port in raw.get("ports") or []
        ],
        "endpoints": endpoints,
    }
