"""The Service's own writes: showing its addresses, or marking it waiting for one.

Each is one merge patch of the Service's status subresource (which applies ``metadata`` and
``status`` but never the spec), guarded by the resourceVersion the decision was made on; the
bodies come from ``desired``.  Before a Service newly shows an address, every other Service
showing it must be one it may share with (``sharers``), and the address's record must be
confirmed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import structlog

from lbctl.ipam.allocator import Allocator
from lbctl.kube.client import SERVICES, KubeClient
from lbctl.kube.events import EventRecorder, timestamp
from lbctl.model import IPAddress, ServiceView
from lbctl.reconcile import desired
from lbctl.reconcile.addresses import AddressRecords
from lbctl.reconcile.claims import Unsatisfied
from lbctl.reconcile.sharers import Sharers
from lbctl.reconcile.waiting import Waiting

log = structlog.get_logger(__name__)

RETRY_PENDING_AFTER = 60.0
RECORD_RETRY = 0.5
"""Seconds before retrying a Service whose address record was refused or not yet confirmed."""


@dataclass(frozen=True)
class Requeue:
    """Reconcile again after ``seconds`` (not an error: e.g. waiting for a free address)."""

    seconds: float


class ReplacedVersions:
    """Per Service key, the versions lbctl's own status writes replaced.  While the informer
    cache still shows one of them, the cached Service is older than what lbctl wrote: a
    reconcile would decide on it, and its guarded write could only conflict (with a
    NetScaler, 1 in 3 new Services did).  The last write's watch event brings the key back."""

    def __init__(self) -> None:
        self._by_key: dict[str, frozenset[str]] = {}

    def replaced(self, key: str, versions: Iterable[str]) -> None:
        """A reconcile of ``key`` made ``versions`` stale (none: it wrote nothing)."""
        stale = frozenset(versions)
        if stale:
            self._by_key[key] = stale
        else:
            self._by_key.pop(key, None)

    def outdated(self, service: ServiceView) -> bool:
        """The cached ``service`` is one that lbctl's own write replaced."""
        return service.resource_version in self._by_key.get(service.key, ())

    def forget(self, key: str) -> None:
        self._by_key.pop(key, None)


class ServiceWrites:
    def __init__(
        self,
        client: KubeClient,
        allocator: Allocator,
        recorder: EventRecorder,
        sharers: Sharers,
        addresses: AddressRecords,
        waiting: Waiting,
        mark: str,
    ) -> None:
        self._client = client
        self._allocator = allocator
        self._recorder = recorder
        self._sharers = sharers
        self._addresses = addresses
        self._waiting = waiting
        self._mark = mark
        """lbctl's class mark (``lbctl.io/load-balancer-class``; empty: the class-less one)."""

    def describe(self, addresses: list[IPAddress]) -> str:
        pools = (f"{a} (pool {self._allocator.pool_of(a) or 'none'})" for a in addresses)
        return f"Assigned IP {', '.join(pools)}"

    async def waiting(self, service: ServiceView, why: Unsatisfied) -> list[str]:
        """Mark a Service that waits for an address as lbctl's; an address it still shows
        that others show and may not share with it (its Vip was lost and a user's edit made
        it conflict with them; they hold it) is taken off.  The version written."""
        withdrawn = set()
        for address in service.held_addresses():
            if await self._sharers.conflict(service, address, among_others=False) is not None:
                withdrawn.add(address)
        body = desired.waiting(
            service, self._mark, withdrawn, (why.condition, why.message), timestamp()
        )
        if body is None:
            return []
        if withdrawn:
            log.warning("address withdrawn from a service that may not share it",
                        service=service.key, addresses=sorted(map(str, withdrawn)))  # fmt: skip
        updated = await self._client.patch(
            SERVICES, service.namespace, service.name, body, subresource="status"
        )
        return [str(updated["metadata"]["resourceVersion"])]

    async def shown(
        self,
        raw: dict[str, Any],
        service: ServiceView,
        addresses: list[IPAddress],
        proven: set[IPAddress],
    ) -> dict[str, Any] | Requeue | None:
        """Show the addresses on the Service in one write to its status subresource,
        guarded by the resourceVersion the decision was made on.  The Service as written
        (None when all was in place); a Requeue when a newly shown address has no confirmed
        record yet, or other Services show it and may not share it (then it waits)."""
        body = desired.shown(service, addresses, self._mark, self.describe(addresses), timestamp())
        if body is None:
            return None
        shown = set(service.ingress_addresses())
        for address in addresses:
            conflict = None if address in shown else await self._sharers.conflict(service, address)
            if conflict is not None:
                message = f"{conflict}; waiting until it may be shown"
                self._waiting.add(service.key)  # woken when one of them stops showing it
                await self._recorder.record(raw, "Warning", "AddressInUse", message)
                return Requeue(RETRY_PENDING_AFTER)
            fresh = address not in service.held_addresses() and address not in proven
            if fresh and not await self._addresses.confirm(service, address):
                log.info("record not confirmed yet", service=service.key, address=str(address))
                return Requeue(RECORD_RETRY)
        updated = await self._client.patch(
            SERVICES, service.namespace, service.name, body, subresource="status"
        )
        log.info("service status written", service=service.key, addresses=[*map(str, addresses)])
        return dict(updated)
