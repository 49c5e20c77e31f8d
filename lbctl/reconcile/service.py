"""Service reconciler: the address's durable record, a Vip, then the Service itself.

Level-triggered: it reads the latest Service, Vip and ``VipAddress`` records from the informer
caches, compares them with what they should be, and writes only the difference (merge patches,
never replaces), always in one order: the record first (the apiserver refuses a second claim of
an address), the Vip next, the Service last (finalizer, annotation and status in one write to
its status subresource); releasing (``release``) runs the other way round.  A new Service
costs three writes: the record, the Vip (created with its status) and the Service.  The
allocation path reads top to bottom from ``_ensure``; what the Service's writes say is decided
without I/O in ``desired``; changes to a Service that already has an address are in
``follow``; the records' writes in ``addresses``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import structlog

from lbctl.ipam.allocator import AddressInUse, Allocator
from lbctl.kube.client import KubeClient
from lbctl.kube.errors import Conflict, KubeError
from lbctl.kube.events import EventRecorder
from lbctl.kube.informer import Informer
from lbctl.model import IPAddress, ServiceView, VipView
from lbctl.reconcile import desired
from lbctl.reconcile.adc_step import AdcStep, LoadBalancerBackend
from lbctl.reconcile.addresses import AddressRecords, AddressTaken, Sharing
from lbctl.reconcile.claims import (
    Claimed,
    PoolChoice,
    Request,
    Unsatisfied,
    claim,
    request_of,
)
from lbctl.reconcile.dualstack import SecondFamily
from lbctl.reconcile.follow import Follow, NoRoom
from lbctl.reconcile.publish import (
    RECORD_RETRY,
    RETRY_PENDING_AFTER,
    ReplacedVersions,
    Requeue,
    ServiceWrites,
)
from lbctl.reconcile.records import VipRecords
from lbctl.reconcile.release import Release
from lbctl.reconcile.sharers import Sharers
from lbctl.reconcile.shown import ShownIndex
from lbctl.reconcile.vipstatus import PENDING, vip_status
from lbctl.reconcile.waiting import Waiting

log = structlog.get_logger(__name__)


class ServiceReconciler:
    def __init__(
        self,
        *,
        client: KubeClient,
        services: Informer,
        vips: Informer,
        allocator: Allocator,
        recorder: EventRecorder,
        load_balancer_class: str | None = None,
        on_release: Callable[[], None] = lambda: None,
        backend: LoadBalancerBackend | None = None,
        addresses: AddressRecords,
        pools: PoolChoice,
        on_shown: Callable[[str], None] = lambda _: None,
    ) -> None:
        """``on_shown``: called with the key of a Service that shows its addresses, for the
        ADC's own queue (``adc_worker``)."""
        self._adc = AdcStep(backend, client, recorder) if backend is not None else None
        self._client = client
        self._services = services
        self._vips = vips
        self._allocator = allocator
        self._recorder = recorder
        self._class = load_balancer_class
        self._mark = load_balancer_class or ""
        """Written to ``lbctl.io/load-balancer-class`` with lbctl's finalizer: the durable
        mark that this instance (of this class; empty: the class-less one) manages the
        Service, which outlives hand edits of its Vip and address records."""
        self.records = VipRecords(client, vips, allocator, on_release)
        self.addresses = addresses
        self.shown = ShownIndex(allocator, self.handles, on_release)
        """Which Services show which address; unmanaged ones block theirs in the allocator."""
        self._sharers = Sharers(client, self.shown, addresses)
        self.waiting = Waiting()
        """Services waiting for an address; requeued whenever one is released."""
        self._pools = pools
        self._on_shown = on_shown
        self._writes = ServiceWrites(
            client, allocator, recorder, self._sharers, addresses, self.waiting, self._mark
        )
        self._second_family = SecondFamily(allocator, self.records, recorder, pools, self.waiting)
        self._follow = Follow(
            allocator, self.records, recorder, self._hold, self.waiting, addresses, pools
        )
        self.allocation_failures: Counter[str] = Counter()
        """Vip condition reason → failed attempts, for /metrics (no label from user input)."""
        self._release = Release(
            client=client, vips=vips, allocator=allocator, recorder=recorder,
            records=self.records, addresses=addresses, adc=self._adc,
            load_balancer_class=load_balancer_class,
        )  # fmt: skip
        self._replaced = ReplacedVersions()

    def handles(self, service: ServiceView) -> bool:
        return service.is_load_balancer and service.load_balancer_class == self._class

    async def reconcile(self, key: str) -> Requeue | None:
        namespace, name = key.split("/", 1)
        raw = self._services.get(key)
        if raw is None:
            self.waiting.discard(key)
            self._replaced.forget(key)
            await self._release.gone(namespace, name)
            return None
        service = ServiceView.from_raw(raw)
        if self._replaced.outdated(service):
            return None
        handled = self.handles(service)
        try:
            if handled and not service.deleting:
                return await self._ensure(raw, service)
            self.waiting.discard(key)
            await self._release.run(raw, service, owned=handled or self._release.marked(service))
            self._replaced.forget(key)
        except KubeError as err:
            if not isinstance(err, Conflict):
                await self._recorder.record(raw, "Warning", "SyncLoadBalancerFailed", str(err))
            raise
        return None

    async def _ensure(self, raw: dict[str, Any], service: ServiceView) -> Requeue | None:
        """The allocation path, in the order that keeps an address on one Service only:

        1. decide the address from the caches and the index (no write): the one the Vip
           records, followed to a new request, or one claimed now;
        2. make its ``VipAddress`` record name the Service (the apiserver refuses a second
           claim);
        3. record it in the Vip;
        4. show it on the Service (one guarded write, the body from ``desired``);
        5. program the ADC.
        """
        mark = self.waiting.mark()
        vip = self.records.current(service)
        if vip is None and self.records.name_taken(service):
            message = f"Vip {service.key} exists and belongs to something else; rename or delete it"
            await self._recorder.record(raw, "Warning", "VipNameConflict", message)
            return Requeue(RETRY_PENDING_AFTER)
        if vip is None:
            await self.records.delete_orphan(service.namespace, service.name, service.uid)
        else:
            vip = await self.records.adopt(vip, service, self._class)
        proven: set[IPAddress] = set()
        """Addresses whose record a write of this reconcile made name the Service."""
        recorded = vip.address if vip is not None else self.records.created_but_not_cached(service)
        disowned = False
        if recorded is not None and vip is not None:
            disowned = await self._follow.disowned(raw, service, vip, recorded)
        outcome: IPAddress | Requeue | None
        if recorded is not None and vip is not None and not disowned:
            outcome = await self._keep(raw, service, vip, recorded, proven)
        elif recorded is not None and vip is None:  # created here; the cache does not show it
            held = await self._hold(raw, service, recorded, proven)
            outcome = recorded if held else Requeue(RETRY_PENDING_AFTER)
        else:
            outcome, vip = await self._take(raw, service, vip, proven, disowned)
        if outcome is None or isinstance(outcome, Requeue):
            return outcome
        address = outcome
        self.waiting.settle(service.key, mark)
        addresses = [address]
        if vip is not None:
            second, waits = await self._second_family.ensure(raw, service, vip)
            if second is not None and await self._hold(raw, service, second, proven):
                addresses.append(second)
            if waits:
                self.waiting.add(service.key)
        published = await self._writes.shown(raw, service, addresses, proven)
        if isinstance(published, Requeue):
            return published
        written = [str(published["metadata"]["resourceVersion"])] if published else []
        fresh = set(addresses) - set(service.ingress_addresses())
        if written:
            if (fresh or not service.has_finalizer) and self._adc is None:
                # With a NetScaler, the ADC worker says so once the NetScaler holds it.
                await self._recorder.record(
                    raw, "Normal", "EnsuredLoadBalancer", self._writes.describe(addresses)
                )
            prune_later = None
        else:
            prune_later = await self.addresses.prune(service, addresses, self.shown.showing)
        self._remember(service, written)
        if self._adc is not None:
            self._on_shown(service.key)  # the ADC's own queue takes it from here
        return Requeue(prune_later + 0.5) if prune_later is not None else None

    async def _keep(
        self,
        raw: dict[str, Any],
        service: ServiceView,
        vip: VipView,
        address: IPAddress,
        proven: set[IPAddress],
    ) -> IPAddress | Requeue | None:
        """Steps 1-3 for a Service whose Vip records ``address``: hold it in the index, follow
        a new request or sharing key (``follow``), record it, and bring the Vip up to date.
        A Service whose key or ports came to conflict with its address's other sharers, with
        no other address where they fit, stops showing it and waits (``_record_pending``)."""
        mine = self._allocator.get(service.key)
        try:
            if mine is None or mine.address != address:  # recorded but not held: hold it
                self._allocator.assign(
                    service.key, address, vip.uid, share_key=vip.share_key, ports=vip.ports
                )
        except AddressInUse as err:
            message = f"Vip {service.key} records {address}, which is held by {err.holder}"
            # Waiting before the Event's write: a release meanwhile must wake it.
            self.waiting.add(service.key)  # woken when the holder lets go
            await self._recorder.record(raw, "Warning", "AddressConflict", message + "; not used")
            return Requeue(RETRY_PENDING_AFTER)
        try:
            address = await self._follow.request(raw, service, vip, address, proven)
            address = await self._follow.ports(raw, service, vip, address, proven)
        except NoRoom as err:
            if await self._sharers.conflict(service, address, among_others=False) is None:
                # Those it would conflict with changed too (e.g. sharers re-keyed together).
                await self._follow.restate(service, vip, address)
                return address
            why = Unsatisfied("AllocationFailed", "PortConflict", f"{err}; waiting", True)
            self.waiting.add(service.key)
            await self._recorder.record(raw, "Warning", why.reason, why.message)
            await self.records.clear(vip)
            self.records.release(service.key)  # both families
            return await self._record_pending(service, vip, why)
        if not await self._hold(raw, service, address, proven):
            return Requeue(RETRY_PENDING_AFTER)
        status = desired.allocated_status(address, self._allocator.pool_of(address))
        if status["conditions"][0]["reason"] == desired.OUTSIDE_POOLS:
            await self._recorder.record(raw, "Warning", desired.OUTSIDE_POOLS, status["message"])
        await self.records.set_status(vip, status)
        return address

    async def _take(
        self,
        raw: dict[str, Any],
        service: ServiceView,
        vip: VipView | None,
        proven: set[IPAddress],
        disowned: bool = False,
    ) -> tuple[IPAddress | Requeue | None, VipView | None]:
        """Steps 1-3 for a Service with no address recorded (or one its Vip may not record,
        ``disowned``): claim one from the index (or record why not, and wait), record it,
        then create or fill the Vip."""
        outcome = await self._claim_address(raw, service)
        if isinstance(outcome, Unsatisfied):
            if disowned and vip is not None:
                await self.records.clear(vip)
            return await self._record_pending(service, vip, outcome), vip
        address = outcome
        if not await self._hold(raw, service, address, proven):
            # Never recorded, so nothing was freed: no waiter is woken (that would retry
            # this very Service at once, for ever).
            self._allocator.release(service.key)
            return Requeue(RECORD_RETRY), vip
        allocated = desired.allocated_status(address, self._allocator.pool_of(address))
        if vip is None:
            vip = await self.records.create(service, address, allocated)
            if vip is None:
                return Requeue(1.0), None
        else:
            await self.records.fill(vip, address)
            await self.records.set_status(vip, allocated)
        return address, vip

    async def _hold(
        self,
        raw: dict[str, Any],
        service: ServiceView,
        address: IPAddress,
        proven: set[IPAddress],
        sharing: Sharing | None = None,
    ) -> bool:
        """Make the address's durable record name the Service; False (with an Event) when the
        apiserver records it for someone else."""
        try:
            if await self.addresses.hold(service, address, sharing):
                proven.add(address)
        except AddressTaken as err:
            message = f"{err}; waiting until it is freed"
            log.info("address claim refused", service=service.key, reason=str(err))
            self.waiting.add(service.key)
            await self._recorder.record(raw, "Warning", "AddressInUse", message)
            return False
        return True

    async def _record_pending(
        self, service: ServiceView, vip: VipView | None, why: Unsatisfied
    ) -> Requeue | None:
        """Make the wait visible and durable: the finalizer, and a Vip saying Pending."""
        written = await self._writes.waiting(service, why)
        prune_later = await self.addresses.prune(
            service, [], self.shown.showing
        )  # e.g. a record edited by hand
        asked = service.requested_pool
        status = vip_status(PENDING, why.condition, why.message, asked)
        if vip is None:
            await self.records.create(service, None, status)
        else:
            await self.records.set_status(vip, status)
        self._remember(service, written)
        if prune_later is not None:
            return Requeue(prune_later + 0.5)
        return Requeue(RETRY_PENDING_AFTER) if why.waits_for_release else None

    async def _claim_address(
        self, raw: dict[str, Any], service: ServiceView
    ) -> IPAddress | Unsatisfied:
        """The address for a Service that has none yet, or why not (also posted as an Event)."""
        request = request_of(service, self._pools)
        if isinstance(request, Request):
            pending = self._allocator.get(service.key)
            if pending is not None and request.address not in (None, pending.address):
                self.records.release(service.key)
            result = claim(self._allocator, service, request, self._joinable(service))
        else:
            result = request
        if isinstance(result, Claimed):
            return result.address
        self.allocation_failures[result.condition] += 1
        # Waiting from the moment the index said no: a release while the Event below is
        # written wakes it (nothing else would: a Service that waits already writes nothing).
        if result.waits_for_release:
            self.waiting.add(service.key)
        else:
            self.waiting.discard(service.key)
        await self._recorder.record(raw, "Warning", result.reason, result.message)
        log.info("no address for service", service=service.key, reason=result.message)
        return result

    def _joinable(self, service: ServiceView) -> Callable[[IPAddress], bool]:
        """Whether the Service could ever hold an address again: not when its record is
        being deleted and names others (e.g. an earlier Service of this name)."""

        def joinable(address: IPAddress) -> bool:
            record = self.addresses.cached(address)
            return record is None or not record.deleting or record.holder(service.uid) is not None

        return joinable

    def _remember(self, service: ServiceView, written: list[str]) -> None:
        """The versions a reconcile that wrote made stale: the one it decided on and every
        one it wrote but the last."""
        stale = [service.resource_version, *written[:-1]] if written else []
        self._replaced.replaced(service.key, stale)
