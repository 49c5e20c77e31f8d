"""Keep the allocator in step with the Vips, and fill Vips that were created without an address.

Vips are the durable record of every allocation.  ``VipTracker`` feeds each Vip event into the
allocator synchronously, in event order, so by the time the Vip informer has listed once the
allocator holds every recorded address: that is the rebuild that makes restarts safe.
``VipReconciler`` is the prototype's IPAM controller: a Vip with an empty ``spec.ipaddress``
gets the lowest free address of its pool.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from lbctl.ipam.allocator import AddressInUse, AllocationError, Allocator
from lbctl.ipam.poolset import NoEligiblePool
from lbctl.kube.client import JSON, VIPS, KubeClient
from lbctl.kube.errors import Conflict, KubeError, NotFound
from lbctl.kube.events import EventRecorder
from lbctl.kube.informer import Informer
from lbctl.model import VipView, secondary_owner
from lbctl.reconcile.addresses import AddressRecords, AddressTaken
from lbctl.reconcile.pools import Pools
from lbctl.reconcile.vipstatus import (
    ALLOCATED,
    PENDING,
    RESERVED,
    vip_status,
    write_vip_status,
)
from lbctl.vipaddress import Holder

log = structlog.get_logger(__name__)

MOVING = "#moving"
"""Suffix of the placeholder owner that holds an address while a Vip moves to it."""


class VipTracker:
    """Informer handler: Vip events → allocator updates and follow-up work."""

    def __init__(
        self,
        allocator: Allocator,
        enqueue_service: Callable[[str], None],
        enqueue_vip: Callable[[str], None],
        on_release: Callable[[], None],
    ) -> None:
        self._allocator = allocator
        self._enqueue_service = enqueue_service
        self._enqueue_vip = enqueue_vip
        self._on_release = on_release
        self.conflicts: dict[str, str] = {}
        """Vip key → the owner already holding its address (two Vips claim one address)."""
        self.pending: dict[str, str | None] = {}
        """Vip key → its first condition's reason, for every Vip whose state is Pending (so
        /metrics counts the waiting Services without reading every cached Vip)."""

    def __call__(self, kind: str, old: JSON | None, new: JSON | None) -> None:
        if kind == "DELETED" and old is not None:
            vip = VipView.from_raw(old)
            self.conflicts.pop(vip.key, None)
            self.pending.pop(vip.key, None)
            first = self._allocator.release(vip.key, token=vip.uid)
            second = self._allocator.release(secondary_owner(vip.key), token=vip.uid)
            if first is not None or second is not None:
                self._on_release()
        elif new is not None:
            vip = VipView.from_raw(new)
            self._observe(vip)
            self._note_pending(vip)
        else:
            return
        if vip.service:
            self._enqueue_service(f"{vip.namespace}/{vip.service}")
        if vip.managed and vip.service != vip.name:
            self._enqueue_service(vip.key)  # lbctl names a Vip after its Service
        self._enqueue_vip(vip.key)

    def _note_pending(self, vip: VipView) -> None:
        if vip.status.get("state") != PENDING:
            self.pending.pop(vip.key, None)
            return
        conditions = vip.status.get("conditions") or [{}]
        self.pending[vip.key] = conditions[0].get("reason")

    def _observe(self, vip: VipView) -> None:
        self._observe_secondary(vip)
        address = vip.address
        if address is None:
            self.conflicts.pop(vip.key, None)  # e.g. its address was cleared: no claim left
            return
        current = self._allocator.get(vip.key)
        if current is not None and current.token not in (None, vip.uid):
            # An older Vip of this name still holds the allocation; its delete event decides.
            self._allocator.release(vip.key, token=current.token)
        try:
            self._allocator.assign(
                vip.key, address, token=vip.uid, share_key=vip.share_key, ports=vip.ports
            )
            self.conflicts.pop(vip.key, None)
        except AddressInUse as err:
            if err.holder == f"{vip.key}{MOVING}":
                return  # this Vip's own move is in flight; the mover records it when done
            self.conflicts[vip.key] = err.holder
            log.warning(
                "two vips claim one address", vip=vip.key, address=str(address), holder=err.holder
            )

    def _observe_secondary(self, vip: VipView) -> None:
        """Hold a dual-stack Vip's second address under the secondary owner."""
        owner = secondary_owner(vip.key)
        address = vip.secondary
        if address is None:
            return  # the Service reconciler releases a second address it no longer wants
        current = self._allocator.get(owner)
        if current is not None:
            if current.address == address:
                return
            self._allocator.release(owner)  # the Vip records another address now
        try:
            self._allocator.assign(owner, address, token=vip.uid)
        except AddressInUse as err:
            log.warning(
                "two vips claim one address", vip=vip.key, address=str(address), holder=err.holder
            )


class VipReconciler:
    def __init__(
        self,
        *,
        client: KubeClient,
        vips: Informer,
        allocator: Allocator,
        recorder: EventRecorder,
        tracker: VipTracker,
        addresses: AddressRecords,
        pools: Pools,
    ) -> None:
        self._pools = pools
        self._client = client
        self._addresses = addresses
        self._vips = vips
        self._allocator = allocator
        self._recorder = recorder
        self._tracker = tracker
        self.waiting: set[str] = set()

    async def reconcile(self, key: str) -> None:
        raw = self._vips.get(key)
        if raw is None:
            self.waiting.discard(key)
            namespace, name = key.split("/", 1)
            await self._addresses.release_gone(namespace, name, VIPS)
            return
        vip = VipView.from_raw(raw)
        event_obj = {**raw, "kind": "Vip", "apiVersion": VIPS.api_version}
        if key in self._tracker.conflicts:
            holder = self._tracker.conflicts[key]
            message = f"{vip.address_text} is already held by {holder}; this Vip is not in effect"
            await self._recorder.record(event_obj, "Warning", "AddressInUse", message)
            await self._status(vip, PENDING, "AddressInUse", message)
            return
        if vip.address_text and vip.address is None:
            message = f"spec.ipaddress {vip.address_text!r} is not an IP address"
            await self._recorder.record(event_obj, "Warning", "InvalidAddress", message)
            await self._status(vip, PENDING, "InvalidAddress", message)
            return
        if vip.managed or vip.deleting:
            self.waiting.discard(key)
            return
        if vip.address is not None:
            self.waiting.discard(key)
            pool = self._allocator.pool_of(vip.address)
            where = f"pool {pool}" if pool else "outside every pool"
            if vip.is_reservation:
                await self._status(vip, RESERVED, RESERVED, f"{vip.address} reserved ({where})")
            else:
                await self._status(vip, ALLOCATED, ALLOCATED, f"{vip.address} ({where})")
            return
        await self._fill(vip, event_obj)

    async def _status(self, vip: VipView, state: str, reason: str, message: str) -> None:
        """The status of a Vip made by hand, so ``kubectl get vips`` shows its state and pool
        like a Service's Vip (a Pending one names the pool it asks for)."""
        pool = self._allocator.pool_of(vip.address) if vip.address is not None else vip.pool
        await write_vip_status(self._client, vip, vip_status(state, reason, message, pool))

    async def _fill(self, vip: VipView, event_obj: JSON) -> None:
        """Give an address-less Vip the lowest free address (the prototype's IPAM step)."""
        try:
            pools = self._pools.choose(vip.namespace, {}, vip.pool)
            allocation = self._allocator.allocate(vip.key, pools)
        except (AllocationError, NoEligiblePool) as err:
            self.waiting.add(vip.key)
            await self._recorder.record(event_obj, "Warning", "AllocationFailed", str(err))
            reason = getattr(err, "reason", type(err).__name__)
            await self._status(vip, PENDING, reason, str(err))
            return
        self._allocator.bind_token(vip.key, vip.uid)
        holder = Holder("Vip", vip.namespace, vip.name, vip.uid)
        try:
            await self._addresses.claim(allocation.address, holder, None)
        except (AddressTaken, KubeError):
            self._allocator.release(vip.key, token=vip.uid)
            raise
        patch = {
            "metadata": {"resourceVersion": vip.resource_version},
            "spec": {"ipaddress": str(allocation.address)},
        }
        try:
            await self._client.patch(VIPS, vip.namespace, vip.name, patch)
        except (Conflict, NotFound):
            self._allocator.release(vip.key, token=vip.uid)
            raise
        self.waiting.discard(vip.key)
        log.info("vip filled", vip=vip.key, address=str(allocation.address))
