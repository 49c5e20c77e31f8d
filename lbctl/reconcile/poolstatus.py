"""What each ``VipPool``'s status says, and writing it when it changes.

The status is the same whichever lbctl instance writes it (several may run, one per class or
namespace, each with its own ``VIP_RANGE``), so instances never overwrite each other in turn:
the conditions judge the pool objects among themselves only (``Invalid``, ``Overlap`` with an
older object, ``Disabled``, ``Exhausted``), and the counts are of the addresses every instance
knows alike (their durable records).  A pool an instance leaves out
because of its own ``VIP_RANGE`` is logged by that instance and shown by ``lbctl status``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lbctl.ipam.allocator import Allocator
from lbctl.ipam.poolset import DISABLED, EXHAUSTED, READY, PoolSet
from lbctl.kube.client import JSON, VIP_POOLS, KubeClient
from lbctl.kube.events import timestamp
from lbctl.kube.informer import Informer
from lbctl.reconcile.pools import Pools

MAX_COUNT = 2**63 - 1
"""Status counts are int64: an IPv6 pool's count saturates here."""


def pool_status(
    name: str,
    pools: PoolSet,
    usage: Mapping[tuple[str, int], tuple[int, int]],
    current: Mapping[str, Any] | None,
    generation: int,
    now: str,
) -> JSON:
    """The status of the ``VipPool`` ``name`` among ``pools`` (objects only) with ``usage``
    ((pool, family) → (total, in use)); each condition keeps its ``lastTransitionTime``
    unless its status changes (API conventions)."""
    body: JSON = {"ipv4": None, "ipv6": None}
    pool = next((p for p in pools.pools if p.name == name), None)
    if pool is None:
        reason, message = pools.left_out.get(name, ("Pending", "not read yet"))
        conditions = [(READY, "False", reason, message)]
    else:
        free = 0
        for version in pool.versions:
            total, in_use = usage.get((name, version), (0, 0))
            body[f"ipv{version}"] = {
                "total": min(total, MAX_COUNT),
                "inUse": min(in_use, MAX_COUNT),
                "free": min(total - in_use, MAX_COUNT),
            }
            free += total - in_use
        if pool.disabled:
            ready = (READY, "False", DISABLED, "disabled: addresses in use stay, none is given")
        else:
            ready = (READY, "True", READY, "addresses are handed out")
        full = (
            (EXHAUSTED, "True", EXHAUSTED, "no free address")
            if free <= 0
            else (EXHAUSTED, "False", "FreeAddresses", f"{min(free, MAX_COUNT)} free")
        )
        conditions = [ready, full]
    previous = {c.get("type"): c for c in (current or {}).get("conditions") or []}
    body["conditions"] = [
        {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "observedGeneration": generation,
            "lastTransitionTime": (
                previous[kind].get("lastTransitionTime", now)
                if kind in previous and previous[kind].get("status") == status
                else now
            ),
        }
        for kind, status, reason, message in conditions
    ]
    return body


class PoolStatusWriter:
    """Writes each ``VipPool``'s status when it differs from what it should be (one merge
    patch of the status subresource; nothing when it is current)."""

    def __init__(
        self, client: KubeClient, objects: Informer, allocator: Allocator, pools: Pools
    ) -> None:
        self._client = client
        self._objects = objects
        self._allocator = allocator
        self._pools = pools

    def stale(self) -> list[str]:
        """Names of the ``VipPool`` objects whose status is not what it should be."""
        wanted = self._wanted()
        return sorted(wanted)

    def _wanted(self, only: str | None = None) -> dict[str, JSON]:
        cached = list(self._objects.items())
        pools = self._pools.objects_only  # parsed once per change of the objects, not per pass
        usage = self._allocator.usage(pools.pools)
        now = timestamp()
        found = {}
        for name, raw in cached:
            if only is not None and name != only:
                continue
            current = raw.get("status") or {}
            generation = int(raw["metadata"].get("generation") or 0)
            wanted = pool_status(name, pools, usage, current, generation, now)
            if not _same(current, wanted):
                found[name] = wanted
        return found

    async def reconcile(self, name: str) -> None:
        wanted = self._wanted(only=name).get(name)
        if wanted is not None:
            await self._client.patch(
                VIP_POOLS, None, name, {"status": wanted}, subresource="status"
            )


def _same(current: Mapping[str, Any], wanted: JSON) -> bool:
    def strip(status: Mapping[str, Any]) -> Any:
        conditions = [
            {k: v for k, v in c.items() if k != "lastTransitionTime"}
            for c in status.get("conditions") or []
        ]
        return status.get("ipv4"), status.get("ipv6"), conditions

    return bool(strip(current) == strip(wanted))
