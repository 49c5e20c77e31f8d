"""Releasing a Service: undo what lbctl did for a Service that is gone, going away, or no
longer lbctl's (another type or class), in the reverse order of the allocation path.

The Service stops showing the address first (one guarded write to its status subresource),
then the Vip goes, then the durable ``VipAddress`` record: no instant exists at which another
Service may take the address while this one still shows it.  Only Services lbctl provably
manages are touched (``desired.marked``): another controller's finalizer and status stay.
"""

from __future__ import annotations

from typing import Any

import structlog

from lbctl.ipam.allocator import Allocator
from lbctl.kube.client import SERVICES, KubeClient
from lbctl.kube.events import EventRecorder
from lbctl.kube.informer import Informer
from lbctl.model import IPAddress, ServiceView, VipView, secondary_owner
from lbctl.reconcile import desired
from lbctl.reconcile.adc_step import AdcStep
from lbctl.reconcile.addresses import AddressRecords
from lbctl.reconcile.records import VipRecords

log = structlog.get_logger(__name__)


class Release:
    def __init__(
        self,
        *,
        client: KubeClient,
        vips: Informer,
        allocator: Allocator,
        recorder: EventRecorder,
        records: VipRecords,
        addresses: AddressRecords,
        adc: AdcStep | None,
        load_balancer_class: str | None,
    ) -> None:
        self._client = client
        self._vips = vips
        self._allocator = allocator
        self._recorder = recorder
        self.records = records
        self.addresses = addresses
        self._adc = adc
        self._class = load_balancer_class
        self._mark = load_balancer_class or ""

    async def gone(self, namespace: str, name: str) -> None:
        """The Service is deleted: its Vip, its address records (once a quorum read agrees
        it is gone) and its ADC objects go."""
        await self.records.delete_orphan(namespace, name, service_uid=None)
        await self.addresses.release_gone(namespace, name)
        if self._adc is not None:
            await self._adc.remove(None, f"{namespace}/{name}", known=False)

    def marked(self, service: ServiceView) -> bool:
        """Whether the Service carries this instance's marks (``desired.marked``)."""
        raw_vip = self._vips.get(service.key)
        vip = VipView.from_raw(raw_vip) if raw_vip is not None else None
        recorded = {uid for _, uid in self.addresses.recorded(service.key, self._class)}
        held = self._allocator.get(service.key)
        address = held.address if held is not None else None
        return desired.marked(service, self._class, vip, recorded, address)

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

    async def run(self, raw: dict[str, Any], service: ServiceView, owned: bool) -> None:
        """Undo what lbctl did for a Service that is going away or is no longer lbctl's.

        Unless ``owned`` (of lbctl's class, or carrying its marks) only lbctl's own leftovers
        go and the Service is not touched: its finalizer and status may be another
        controller's.  Status and annotation are cleared only where they show lbctl's address.
        """
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
        ours |= {recorded_address for recorded_address, _ in recorded}
        # Stop showing the address first (one guarded write), then forget it: the durable
        # record goes last, so no instant exists at which another Service may take it while
        # this one still shows it.
        body = desired.unshown(service, ours, self._mark)
        if body is not None:
            await self._client.patch(
                SERVICES, service.namespace, service.name, body, subresource="status"
            )
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
