"""The second IP family of a dual-stack Service.

A Service with ``ipFamilyPolicy`` PreferDualStack or RequireDualStack (and two
``spec.ipFamilies``) gets one address per family.  The first family's address is the one the
rest of lbctl knows (annotation ``com.citrix.vip``, ``spec.ipaddress``); the second one is held
by the allocator under a separate owner, recorded in the Vip's ``spec.secondaryIpaddress`` and
shown as a second ``status.loadBalancer.ingress`` entry.  Without a free address of the second
family, RequireDualStack says so in a Warning Event and PreferDualStack in a Normal one; both
serve the first family meanwhile and get the second as soon as one is free.
"""

from __future__ import annotations

import contextlib
from typing import Any

from lbctl.ipam.allocator import AddressInUse, Allocation, AllocationError, Allocator
from lbctl.ipam.ranges import DEFAULT_POOL
from lbctl.kube.events import EventRecorder
from lbctl.model import REQUIRE_DUAL_STACK, IPAddress, ServiceView, VipView, secondary_owner
from lbctl.reconcile.claims import PoolChoice, Request, request_of, shown_to_keep
from lbctl.reconcile.records import VipRecords


class SecondFamily:
    def __init__(
        self,
        allocator: Allocator,
        records: VipRecords,
        recorder: EventRecorder,
        pools: PoolChoice,
        waiting: set[str],
    ) -> None:
        """``waiting``: the Services woken when an address is freed (one waiting for its second
        family joins it before the Event that says so is written)."""
        self._allocator = allocator
        self._waiting = waiting
        self._pools = pools
        self._records = records
        self._recorder = recorder

    async def ensure(
        self, raw: dict[str, Any], service: ServiceView, vip: VipView
    ) -> tuple[IPAddress | None, bool]:
        """The Service's second-family address (None if it has none) and whether it waits
        for one to be freed."""
        owner = secondary_owner(service.key)
        if len(service.families) < 2:
            if self._allocator.get(owner) is not None or vip.secondary_text:
                self._records.release_secondary(service.key)
                await self._records.set_secondary(vip, None)
            return None, False
        version = service.families[1]
        held = self._allocator.get(owner)
        recorded = vip.secondary
        if held is None and recorded is not None and recorded.version == version:
            try:
                held = self._allocator.assign(owner, recorded, token=vip.uid)
            except AddressInUse as err:
                message = f"Vip {vip.key} records {recorded}, which is held by {err.holder}"
                await self._recorder.record(raw, "Warning", "AddressConflict", message)
        if held is None and recorded is None:
            held = self._keep_shown(service, vip, version)
        if held is None:
            request = request_of(service, self._pools)
            home = self._allocator.pool_of(vip.address) if vip.address is not None else None
            pool = request.pools if isinstance(request, Request) else (home or DEFAULT_POOL,)
            try:
                held = self._allocator.allocate(owner, pool, version=version)
            except AllocationError as err:
                required = service.ip_family_policy == REQUIRE_DUAL_STACK
                message = (
                    f"{service.ip_family_policy}: no IPv{version} address ({err}); serving "
                    f"IPv{service.families[0]} only until one is free"
                )
                kind, reason = (
                    ("Warning", "AllocationFailed") if required else ("Normal", "SingleFamily")
                )
                self._waiting.add(service.key)  # before the write: a release meanwhile wakes it
                await self._recorder.record(raw, kind, reason, message)
                return None, True
        await self._records.set_secondary(vip, held.address)
        return held.address, False

    def _keep_shown(self, service: ServiceView, vip: VipView, version: int) -> Allocation | None:
        """Hold again the second-family address the Service shows (its Vip was lost, as the
        first family's is kept: ``shown_to_keep``), if nobody else may hold it."""
        owner = secondary_owner(service.key)
        for address in shown_to_keep(self._allocator, service, version):
            with contextlib.suppress(AddressInUse):
                return self._allocator.assign(owner, address, token=vip.uid)
        return None
