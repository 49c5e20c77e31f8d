"""Service reconciler: the address's durable record, a Vip, then the Service itself.

Level-triggered: it reads the latest Service, Vip and ``VipAddress`` records from the informer
caches, compares them with what they should be, and writes only the difference (merge patches,
never replaces), always in one order: the record first (the apiserver refuses a second claim of
an address), the Vip next, the Service last (finalizer, annotation and status in one write to
its status subresource); releasing runs the other way round.  A new Service costs four writes:
the record, the Vip, the Vip's status and the Service.  Changes to a Service that already has
an address are in ``follow``; the records' writes in ``addresses``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from lbctl.ipam.allocator import AddressInUse, Allocator
from lbctl.kube.client import SERVICES, KubeClient
from lbctl.kube.errors import Conflict, KubeError
from lbctl.kube.events import EventRecorder
from lbctl.kube.informer import Informer
from lbctl.model import (
    CLASS_ANNOTATION,
    LB_FINALIZER,
    VIP_ANNOTATION,
    IPAddress,
    ServiceView,
    VipView,
    parse_ip,
    secondary_owner,
)
from lbctl.reconcile.adc_step import AdcStep, LoadBalancerBackend, ingress_entries
from lbctl.reconcile.addresses import AddressRecords, AddressTaken, Sharing
from lbctl.reconcile.claims import Claimed, Request, Unsatisfied, claim, request_of
from lbctl.reconcile.dualstack import SecondFamily
from lbctl.reconcile.follow import Follow
from lbctl.reconcile.records import ALLOCATED, PENDING, VipRecords, vip_status
from lbctl.reconcile.shown import ShownIndex

log = structlog.get_logger(__name__)

RETRY_PENDING_AFTER = 60.0
RECORD_RETRY = 0.5
"""Seconds before retrying a Service whose address record was refused or not yet confirmed."""
OUTSIDE_POOLS = "OutsidePools"


@dataclass(frozen=True)
class Requeue:
    """Reconcile again after ``seconds`` (not an error: e.g. waiting for a free address)."""

    seconds: float


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
    ) -> None:
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
        self.shown = ShownIndex()
        """Which Services show which address (fed by the Service informer)."""
        self._second_family = SecondFamily(allocator, self.records, recorder)
        self.waiting: set[str] = set()
        """Services waiting for an address; requeued whenever one is released."""
        self._follow = Follow(
            allocator, self.records, recorder, self._hold, self.waiting, addresses
        )
        self.allocation_failures: Counter[tuple[str, str]] = Counter()
        """(requested pool, reason) → failed attempts, for /metrics."""
        self._superseded: dict[str, set[str]] = {}
        """Service key → resourceVersions written by lbctl and already overwritten by its own
        next write: an event for one of them is skipped, the final version's event follows."""

    def handles(self, service: ServiceView) -> bool:
        return service.is_load_balancer and service.load_balancer_class == self._class

    async def reconcile(self, key: str) -> Requeue | None:
        namespace, name = key.split("/", 1)
        raw = self._services.get(key)
        if raw is None:
            await self.records.delete_orphan(namespace, name, service_uid=None)
            await self.addresses.release_gone(namespace, name)
            self.waiting.discard(key)
            self._superseded.pop(key, None)
            if self._adc is not None:
                await self._adc.remove(None, key, known=False)
            return None
        service = ServiceView.from_raw(raw)
        if service.resource_version in self._superseded.get(key, ()):
            return None
        handled = self.handles(service)
        try:
            if handled and not service.deleting:
                return await self._ensure(raw, service)
            await self._cleanup(raw, service, owned=handled or self._marked(service))
        except KubeError as err:
            if not isinstance(err, Conflict):
                await self._recorder.record(raw, "Warning", "SyncLoadBalancerFailed", str(err))
            raise
        return None

    async def _ensure(self, raw: dict[str, Any], service: ServiceView) -> Requeue | None:
        """Claim the address durably, record it in the Vip, then show it on the Service.

        The order is what keeps an address on one Service only: the ``VipAddress`` record
        first (the apiserver refuses a second claim), the Vip next, the Service last.
        """
        if not service.has_finalizer:
            await self._recorder.record(
                raw, "Normal", "EnsuringLoadBalancer", "Ensuring load balancer"
            )
        vip = self.records.current(service)
        if vip is None and self.records.name_taken(service):
            message = f"Vip {service.key} exists and belongs to something else; rename or delete it"
            await self._recorder.record(raw, "Warning", "VipNameConflict", message)
            return Requeue(RETRY_PENDING_AFTER)
        if vip is None:
            await self.records.delete_orphan(service.namespace, service.name, service.uid)
        address = vip.address if vip is not None else self.records.created_but_not_cached(service)
        proven: set[IPAddress] = set()
        """Addresses whose record a write of this reconcile made name the Service."""
        disowned = False
        if vip is not None and address is not None:
            disowned = await self._follow.disowned(raw, service, vip, address)
            if disowned:
                address = None
        if vip is not None and address is not None:
            mine = self._allocator.get(service.key)
            try:
                if mine is None or mine.address != address:  # recorded but not held: hold it
                    self._allocator.assign(
                        service.key, address, vip.uid, share_key=vip.share_key, ports=vip.ports
                    )
            except AddressInUse as err:
                message = f"Vip {service.key} records {address}, which is held by {err.holder}"
                await self._recorder.record(
                    raw, "Warning", "AddressConflict", message + "; not used"
                )
                self.waiting.add(service.key)  # woken when the holder lets go
                return Requeue(RETRY_PENDING_AFTER)
            address = await self._follow.request(raw, service, vip, address, proven)
        if address is None:
            outcome = await self._claim_address(raw, service)
            if isinstance(outcome, Unsatisfied):
                if disowned and vip is not None:
                    await self.records.clear(vip)
                return await self._record_pending(service, vip, outcome)
            address = outcome
            if not await self._hold(raw, service, address, proven):
                # Never recorded, so nothing was freed: no waiter is woken (that would retry
                # this very Service at once, for ever).
                self._allocator.release(service.key)
                return Requeue(RECORD_RETRY)
            allocated = self._allocated_status(address)
            if vip is None:
                vip = await self.records.create(service, address, allocated)
                if vip is None:
                    return Requeue(1.0)
            else:
                await self.records.fill(vip, address)
                await self.records.set_status(vip, allocated)
        else:
            if vip is not None:
                await self._follow.ports(raw, service, vip)
            if not await self._hold(raw, service, address, proven):
                return Requeue(RETRY_PENDING_AFTER)
            if vip is not None:
                status = self._allocated_status(address)
                if status["conditions"][0]["reason"] == OUTSIDE_POOLS:
                    await self._recorder.record(raw, "Warning", OUTSIDE_POOLS, status["message"])
                await self.records.set_status(vip, status)
        self.waiting.discard(service.key)
        addresses = [address]
        if vip is not None:
            second, waits = await self._second_family.ensure(raw, service, vip)
            if second is not None and await self._hold(raw, service, second, proven):
                addresses.append(second)
            if waits:
                self.waiting.add(service.key)
        written = await self._publish(service, addresses, proven)
        if written is None:
            return Requeue(RECORD_RETRY)
        if written:
            shown = ", ".join(
                f"{a} (pool {self._allocator.pool_of(a) or 'none'})" for a in addresses
            )
            await self._recorder.record(
                raw, "Normal", "EnsuredLoadBalancer", f"Assigned IP {shown}"
            )
            prune_later = None
        else:
            prune_later = await self.addresses.prune(service, addresses)
        try:
            if self._adc is not None:
                written += await self._adc.ensure(raw, service, addresses)
        finally:
            self._remember(service.key, written)
        return Requeue(prune_later + 0.5) if prune_later is not None else None

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
            await self._recorder.record(raw, "Warning", "AddressInUse", message)
            self.waiting.add(service.key)
            return False
        return True

    def _allocated_status(self, address: IPAddress) -> dict[str, Any]:
        pool = self._allocator.pool_of(address)
        if pool is None:
            message = f"{address} is no longer in any VIP_RANGE pool; kept while in use"
            return vip_status(ALLOCATED, OUTSIDE_POOLS, message, None)
        return vip_status(ALLOCATED, ALLOCATED, f"{address} from pool {pool}", pool)

    async def _record_pending(
        self, service: ServiceView, vip: VipView | None, why: Unsatisfied
    ) -> Requeue | None:
        """Make the wait visible and durable: the finalizer, and a Vip saying Pending."""
        written = await self._add_finalizer(service)
        prune_later = await self.addresses.prune(service, [])  # e.g. a record edited by hand
        status = vip_status(PENDING, why.condition, why.message, None)
        if vip is None:
            await self.records.create(service, None, status)
        else:
            await self.records.set_status(vip, status)
        self._remember(service.key, written)
        if prune_later is not None:
            return Requeue(prune_later + 0.5)
        return Requeue(RETRY_PENDING_AFTER) if why.waits_for_release else None

    async def _claim_address(
        self, raw: dict[str, Any], service: ServiceView
    ) -> IPAddress | Unsatisfied:
        """The address for a Service that has none yet, or why not (also posted as an Event)."""
        request = request_of(service)
        if isinstance(request, Request):
            pending = self._allocator.get(service.key)
            if pending is not None and request.address not in (None, pending.address):
                self.records.release(service.key)
            result = claim(self._allocator, service, request)
        else:
            result = request
        if isinstance(result, Claimed):
            return result.address
        pool = request.pool if isinstance(request, Request) else "-"
        self.allocation_failures[(pool, result.condition)] += 1
        await self._recorder.record(raw, "Warning", result.reason, result.message)
        log.info("no address for service", service=service.key, reason=result.message)
        if result.waits_for_release:
            self.waiting.add(service.key)
        else:
            self.waiting.discard(service.key)
        return result

    def _remember(self, key: str, written: list[str]) -> None:
        if len(written) > 1:
            self._superseded[key] = set(written[:-1])
        else:
            self._superseded.pop(key, None)

    async def _add_finalizer(self, service: ServiceView) -> list[str]:
        """Mark a Service that waits for an address as lbctl's (the finalizer list is replaced
        whole, so the patch is guarded by the resourceVersion).  Like every Service write of
        lbctl's it goes to the status subresource, which applies metadata too but never the
        spec, so lbctl needs no right to change a Service's spec."""
        if service.has_finalizer:
            return []
        metadata = {
            "finalizers": [*service.finalizers, LB_FINALIZER],
            "annotations": {CLASS_ANNOTATION: self._mark},
            "resourceVersion": service.resource_version,
        }
        updated = await self._client.patch(
            SERVICES, service.namespace, service.name, {"metadata": metadata}, subresource="status"
        )
        return [str(updated["metadata"]["resourceVersion"])]

    async def _publish(
        self, service: ServiceView, addresses: list[IPAddress], proven: set[IPAddress]
    ) -> list[str] | None:
        """Show the addresses on the Service: finalizer, annotation and status in one write to
        its status subresource (which applies metadata too), guarded by the resourceVersion
        the decision was made on.  The version written ([] when all was in place); None when
        a newly shown address has no confirmed record yet."""
        texts = tuple(str(a) for a in addresses)
        metadata: dict[str, Any] = {}
        if not service.has_finalizer:
            metadata["finalizers"] = [*service.finalizers, LB_FINALIZER]
        annotations = {VIP_ANNOTATION: texts[0], CLASS_ANNOTATION: self._mark}
        changed = {k: v for k, v in annotations.items() if service.annotations.get(k) != v}
        if changed:
            metadata["annotations"] = changed
        if not metadata and service.ingress_ips == texts:
            return []
        shown = set(service.held_addresses())
        for address in addresses:
            if address not in shown and self._shown_elsewhere(service, address):
                return None
            fresh = address not in shown and address not in proven
            if fresh and not await self.addresses.confirm(service, address):
                log.info("record not confirmed yet", service=service.key, address=str(address))
                return None
        metadata["resourceVersion"] = service.resource_version
        body: dict[str, Any] = {"metadata": metadata}
        if service.ingress_ips != texts:
            body["status"] = {"loadBalancer": {"ingress": ingress_entries(addresses, None)}}
        updated = await self._client.patch(
            SERVICES, service.namespace, service.name, body, subresource="status"
        )
        log.info("service status written", service=service.key, addresses=list(texts))
        return [str(updated["metadata"]["resourceVersion"])]

    def _shown_elsewhere(self, service: ServiceView, address: IPAddress) -> bool:
        """Another Service shows ``address`` and does not share it with this one by key
        (possible only when a record was edited by hand): never show it twice."""
        for key in self.shown.others(address, service.key):
            raw = self._services.get(key)
            other = ServiceView.from_raw(raw) if raw is not None else None
            if other is None or other.share_key is None or other.share_key != service.share_key:
                log.warning("address shown by another service", service=service.key,
                            address=str(address), shown_by=key)  # fmt: skip
                self.waiting.add(service.key)
                return True
        return False

    def _marked(self, service: ServiceView) -> bool:
        """Whether the Service carries this instance's marks: a Vip it made for this very
        Service (same name and UID, not of another instance's class), an address record an
        instance of its class claimed for it (also after the Vip was deleted by hand), or the
        annotation lbctl writes naming the address it holds for the Service.  The standard
        finalizer is no proof: other controllers use it too."""
        if service.annotations.get(CLASS_ANNOTATION) == self._mark:
            return True  # lbctl's own annotation, written with its finalizer
        raw_vip = self._vips.get(service.key)
        if raw_vip is not None:
            vip = VipView.from_raw(raw_vip)
            if vip.managed and vip.service == service.name and vip.service_uid == service.uid:
                # Made for this very Service: by this instance, or by one of another class
                # (whose allocation this instance's index also holds: that is no mark).
                return vip.load_balancer_class in (None, self._class)
        if any(uid == service.uid for _, uid in self.addresses.recorded(service.key, self._class)):
            return True  # an address record this instance's class claimed for this Service
        held = self._allocator.get(service.key)
        shown = parse_ip(service.annotations.get(VIP_ANNOTATION))
        return held is not None and held.address == shown

    def _addresses_of(self, service: ServiceView) -> set[IPAddress]:
        """Every address lbctl gave the Service: recorded in its Vip or held for it."""
        found = set()
        raw_vip = self._vips.get(service.key)
        if raw_vip is not None and VipView.from_raw(raw_vip).managed:
            vip = VipView.from_raw(raw_vip)
            found |= {vip.address, vip.secondary}
        for owner in (service.key, secondary_owner(service.key)):
            held = self._allocator.get(owner)
            found.add(held.address if held is not None else None)
        return {a for a in found if a is not None}

    async def _cleanup(self, raw: dict[str, Any], service: ServiceView, owned: bool) -> None:
        """Undo what lbctl did for a Service that is going away or is no longer lbctl's.

        Unless ``owned`` (of lbctl's class, or carrying its marks) only lbctl's own leftovers
        go and the Service is not touched: its finalizer and status may be another
        controller's.  Status and annotation are cleared only where they show lbctl's address.
        """
        self.waiting.discard(service.key)
        raw_vip = self._vips.get(service.key)
        managed_vip = raw_vip is not None and VipView.from_raw(raw_vip).managed
        pending = raw_vip is None and self._allocator.get(service.key) is not None
        ours = self._addresses_of(service)
        if self._adc is not None:
            await self._adc.remove(raw, service.key, known=owned and service.has_finalizer)
        recorded = self.addresses.recorded(service.key, self._class)
        if not owned:
            await self.records.delete_orphan(service.namespace, service.name, service.uid)
            if pending:
                self.records.release(service.key)
            shown_now = set(service.held_addresses())
            for recorded_address, uid in recorded:
                if recorded_address not in shown_now:
                    await self.addresses.release(recorded_address, uid)
            return
        if not (service.has_finalizer or managed_vip or pending or recorded):
            return
        await self._recorder.record(raw, "Normal", "DeletingLoadBalancer", "Deleting load balancer")
        ours |= {recorded_address for recorded_address, _ in recorded}
        # Stop showing the address first (one guarded write), then forget it: the durable
        # record goes last, so no instant exists at which another Service may take it while
        # this one still shows it.
        metadata: dict[str, Any] = {"resourceVersion": service.resource_version}
        body: dict[str, Any] = {"metadata": metadata}
        if ours & set(service.ingress_addresses()):
            body["status"] = {"loadBalancer": {"ingress": None}}
        annotations: dict[str, None] = {}
        if parse_ip(service.annotations.get(VIP_ANNOTATION)) in ours:
            annotations[VIP_ANNOTATION] = None
        if service.annotations.get(CLASS_ANNOTATION) == self._mark:
            annotations[CLASS_ANNOTATION] = None
        if annotations:
            metadata["annotations"] = annotations
        if service.has_finalizer:
            metadata["finalizers"] = [f for f in service.finalizers if f != LB_FINALIZER]
        if len(body) > 1 or len(metadata) > 1:
            await self._client.patch(
                SERVICES, service.namespace, service.name, body, subresource="status"
            )
        self._superseded.pop(service.key, None)
        # The Vip, lbctl's mark on the Service, goes last: a cleanup cut short is resumed.
        released = await self.records.delete_orphan(service.namespace, service.name, None)
        if released is None and raw_vip is None:
            released = self.records.release(service.key)
        for recorded_address, uid in recorded:
            await self.addresses.release(recorded_address, uid)
        shown = [a for a in service.held_addresses() if a in ours]
        address = released.address if released is not None else (shown[0] if shown else None)
        if address is not None:
            message = f"Released IP {address}"
            await self._recorder.record(raw, "Normal", "DeletedLoadBalancer", message)
        log.info("service cleaned up", service=service.key)
