"""Changes to a Service that already has an address: a new requested address, a new
sharing key, new ports on a shared address.

Each keeps the address in use unless the change can be honoured safely: the new address is
claimed durably (``hold``) before the Vip is re-pointed, and the old one is freed only after
the Service stops showing it (the reconciler's prune).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from lbctl.ipam.allocator import AllocationError, Allocator, PortConflict
from lbctl.ipam.ranges import DEFAULT_POOL
from lbctl.kube.events import EventRecorder
from lbctl.model import IPAM_RANGE_ANNOTATION, RESERVED, IPAddress, ServiceView, VipView
from lbctl.reconcile.addresses import AddressRecords, Sharing
from lbctl.reconcile.claims import (
    FRONTEND_IP_ANNOTATION,
    PoolChoice,
    Request,
    Unsatisfied,
    request_of,
)
from lbctl.reconcile.records import VipRecords
from lbctl.reconcile.vip import MOVING

Hold = Callable[
    [dict[str, Any], ServiceView, IPAddress, set[IPAddress], Sharing | None], Awaitable[bool]
]
"""Make an address's durable record name the Service (False: recorded for someone else)."""

log = structlog.get_logger(__name__)


class NoRoom(Exception):
    """The Service may not keep its address (its key or ports conflict with the address's
    other sharers) and no other address fits: it stops showing it and waits."""


class Follow:
    def __init__(
        self,
        allocator: Allocator,
        records: VipRecords,
        recorder: EventRecorder,
        hold: Hold,
        waiting: set[str],
        addresses: AddressRecords,
        pools: PoolChoice,
    ) -> None:
        self._allocator = allocator
        self._pools = pools
        self._addresses = addresses
        self.records = records
        self._recorder = recorder
        self._hold = hold
        self.waiting = waiting
        """The reconciler's set of Services waiting for an address (shared, not copied)."""

    async def disowned(
        self, raw: dict[str, Any], service: ServiceView, vip: VipView, address: IPAddress
    ) -> bool:
        """Whether the Vip records an address the apiserver records for others and not for
        this Service (a Vip re-pointed by hand onto an address in use): then the Service lets
        go of it in memory (which frees nothing, the record keeps it taken, but wakes a
        holder refused while this Service held it) and claims an address as if its Vip had
        none.  The index's record is checked first; a quorum read confirms.  Never when the
        Service shows the address: then it is the record that was edited, and letting go
        would free an address in use (the Service keeps it and waits, with an Event)."""
        recorded = self._allocator.recorded_for(address)
        if recorded is None or service.key in recorded or address in service.held_addresses():
            return False
        record = await self._addresses.fresh(address)
        if record is None or record.holder(service.uid) is not None:
            return False
        held = self._allocator.get(service.key)
        if held is not None and held.address == address:
            self.records.release_primary(service.key)
        holders = ", ".join(sorted(record.holder_keys)) or "a VipAddress record"
        message = (
            f"Vip {service.key} records {address}, which is recorded for {holders}; "
            "not used, claiming an address again"
        )
        log.warning("vip records an address recorded for others", vip=vip.key,
                    address=str(address), holders=holders)  # fmt: skip
        await self._recorder.record(raw, "Warning", "AddressConflict", message)
        return True

    async def request(
        self,
        raw: dict[str, Any],
        service: ServiceView,
        vip: VipView,
        current: IPAddress,
        proven: set[IPAddress],
    ) -> IPAddress:
        """Move to a newly requested address when it is free; otherwise keep the current one."""
        left = await self._leave_sharing(raw, service, vip, current, proven)
        if left is not None:
            return left
        request = request_of(service, self._pools)
        if isinstance(request, Unsatisfied):
            if _asks(service):  # a pool or an address it may not have: say so, keep its own
                message = f"{request.message}; keeping {current}"
                await self._recorder.record(raw, "Warning", request.reason, message)
            return current
        wanted = request.address
        if wanted is None:
            return await self._follow_pool(raw, service, vip, current, proven, request)
        if wanted == current:
            return current
        holder = self._allocator.holder(wanted)
        problem = None
        pool = self._allocator.pool(self._allocator.pool_of(wanted) or "")
        if pool is None or pool.disabled:
            where = "is not in any pool" if pool is None else f"is in disabled pool {pool.name!r}"
            problem = f"requested address {wanted} {where}"
            self.waiting.add(service.key)  # woken when the pools change
        elif holder is not None and holder.owner != service.key:
            problem = f"requested address {wanted} is held by {holder.owner}"
            self.waiting.add(service.key)
        if problem is not None:
            message = f"{problem}; keeping {current}"
            await self._recorder.record(raw, "Warning", "AllocationFailed", message)
            return current
        if not await self._hold(raw, service, wanted, proven, None):
            return current
        await self.records.move(vip, current, wanted)
        self.waiting.discard(service.key)
        return wanted

    async def _leave_sharing(
        self,
        raw: dict[str, Any],
        service: ServiceView,
        vip: VipView,
        current: IPAddress,
        proven: set[IPAddress],
    ) -> IPAddress | None:
        """A Service whose sharing key changed: one that shares its address (as this index or
        the address's record, which names other instances' sharers, says) leaves it for an
        address of its new key, or a free one (as MetalLB reassigns it); one that holds it
        alone keeps it under the new key (which later sharers of the key join).  The new
        address, or None when the Service stays where it is."""
        held = self._allocator.get(service.key)
        if held is None or held.share_key == service.share_key:
            return None
        if held.share_key and held.share_key.split("/", 1)[1].startswith(RESERVED):
            return None  # a claimed reservation: the key is lbctl's, not the Service's
        record = self._addresses.cached(current)
        sharers = {a.owner for a in self._allocator.holders(current)} | {
            h.key for h in (record.holders if record is not None else ())
        }
        if sharers - {service.key}:
            return await self._move(raw, service, vip, current, proven, "sharing key changed")
        sharing = (service.share_key, service.ports if service.share_key else frozenset())
        if await self._hold(raw, service, current, proven, sharing):
            self._allocator.set_share_key(service.key, *sharing)
            await self.records.set_sharing(vip, sharing)
        return None

    async def restate(self, service: ServiceView, vip: VipView, current: IPAddress) -> None:
        """The Service stays on ``current`` under its new key and ports: those it seemed to
        conflict with changed too (e.g. sharers re-keyed together), as a quorum read of the
        other showers proved.  Record, index and Vip take the key and ports in place."""
        sharing = (service.share_key, service.ports if service.share_key else frozenset())
        await self._addresses.restate(service, current, sharing)
        self._allocator.set_share_key(service.key, *sharing)
        await self.records.set_sharing(vip, sharing)

    async def ports(
        self,
        raw: dict[str, Any],
        service: ServiceView,
        vip: VipView,
        current: IPAddress,
        proven: set[IPAddress],
    ) -> IPAddress:
        """A Service sharing its address changed ports: record them unless another sharer
        uses one of them (as this instance's index or the address record, which also names
        other instances' sharers, says); then it moves to an address where its ports fit
        (as MetalLB reassigns it), or ``NoRoom`` where none is."""
        held = self._allocator.get(service.key)
        if held is None or held.share_key is None or held.ports == service.ports:
            return current
        try:
            self._allocator.set_ports(service.key, service.ports)
            clash = self._addresses.port_clash(current, service)
            if clash is not None:
                self._allocator.set_ports(service.key, held.ports)
        except PortConflict as err:
            clash = str(err)
        if clash is None:
            await self.records.set_ports(vip, service.ports)
            return current
        why = f"ports clash on the shared address ({clash})"
        return await self._move(raw, service, vip, current, proven, why)

    async def _move(
        self,
        raw: dict[str, Any],
        service: ServiceView,
        vip: VipView,
        current: IPAddress,
        proven: set[IPAddress],
        why: str,
    ) -> IPAddress:
        """Move the Service off ``current`` to an address of its pool where its sharing key
        and ports fit (the old one is freed once the Service stops showing it).  Raises
        ``NoRoom`` where none is (a Warning Event says why): it may not stay beside sharers
        it conflicts with."""
        request = request_of(service, self._pools)
        if isinstance(request, Request) and request.address is not None:
            raise NoRoom(f"{why}, and it asks for {request.address}")
        home = self._allocator.pool_of(current)
        pools = request.pools if isinstance(request, Request) else (home or DEFAULT_POOL,)
        return await self._relocate(raw, service, vip, current, proven, pools, why)

    async def _follow_pool(
        self,
        raw: dict[str, Any],
        service: ServiceView,
        vip: VipView,
        current: IPAddress,
        proven: set[IPAddress],
        request: Request,
    ) -> IPAddress:
        """A Service whose ``ipam-range`` changed to a pool other than its address's (its Vip
        records the pool it was given) moves to it when it has room, as a changed requested
        address does; otherwise it keeps its address, with a Warning, and waits for room.  An
        address outside every pool, or left in another pool by an edit of the pools, is kept
        (it is not moved)."""
        home = self._allocator.pool_of(current)
        recorded = vip.requested_pool if vip.requested_pool is not None else vip.pool
        if request.pool is None or home is None or home == request.pool:
            await self.records.set_requested(vip, request.pool or "")
            return current
        if recorded == request.pool:
            # Given for this very request: the pools were edited since (e.g. a block of the
            # pool given to another one).  An address in use is never moved for that.
            return current
        why = f"{IPAM_RANGE_ANNOTATION} asks for pool {request.pool!r}"
        try:
            return await self._relocate(
                raw, service, vip, current, proven, request.pools, why, request.pool
            )
        except NoRoom as err:
            self.waiting.add(service.key)
            message = f"{err}; keeping {current} (pool {home!r})"
            await self._recorder.record(raw, "Warning", "AllocationFailed", message)
            return current

    async def _relocate(
        self,
        raw: dict[str, Any],
        service: ServiceView,
        vip: VipView,
        current: IPAddress,
        proven: set[IPAddress],
        pools: tuple[str, ...],
        why: str,
        requested: str | None = None,
    ) -> IPAddress:
        """Move to an address of ``pools`` where the Service's sharing key and ports fit
        (``requested``: the pool asked for, recorded on the Vip); ``NoRoom`` where none is."""
        placeholder = f"{service.key}{MOVING}"
        sharing = (service.share_key, service.ports)
        try:
            wanted = self._allocator.allocate(
                placeholder, pools, current.version, service.share_key, service.ports,
                own_on_clash=True,
            ).address  # fmt: skip
        except AllocationError as err:
            raise NoRoom(f"{why}, and no other address ({err})") from err
        try:
            if wanted == current:  # a clash only the record knows of: the index offers it again
                raise NoRoom(f"{why}, and no other address fits")
            if not await self._hold(raw, service, wanted, proven, sharing):
                return current
        finally:
            self._allocator.release(placeholder)
        await self.records.move(vip, current, wanted, sharing, requested)
        self.waiting.discard(service.key)
        message = f"{why}: moved from {current} to {wanted}"
        await self._recorder.record(raw, "Normal", "AddressMoved", message)
        return wanted


def _asks(service: ServiceView) -> bool:
    """Whether the Service asks for a pool or an address (rather than any address)."""
    annotations = service.annotations
    return bool(
        annotations.get(IPAM_RANGE_ANNOTATION, "").strip()
        or annotations.get(FRONTEND_IP_ANNOTATION)
        or service.load_balancer_ip
    )
