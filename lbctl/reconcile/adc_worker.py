"""The NetScaler's share of a Service's work, on a queue and workers of its own.

IPAM and the Service's status never wait for the NetScaler: the Service reconcile shows the
address and hands the key over here.  A slow or black-holed NetScaler then delays only this
queue (each key backs off on its own, and the NITRO client's circuit breaker fails requests at
once while the NetScaler does not answer), never an address.  Removal stays with the Service
reconcile, which must not drop its finalizer before the ADC objects are gone.
"""

from __future__ import annotations

from collections.abc import Callable

from lbctl.ipam.allocator import Allocator
from lbctl.kube.informer import Informer
from lbctl.model import IPAddress, ServiceView, secondary_owner
from lbctl.reconcile.adc_step import AdcStep
from lbctl.reconcile.publish import ReplacedVersions, Requeue

ADC_KIND = "Adc"
"""Work-queue kind of the ADC's keys (``Adc:<namespace>/<name>``)."""


class AdcReconciler:
    def __init__(
        self,
        services: Informer,
        step: AdcStep,
        allocator: Allocator,
        handles: Callable[[ServiceView], bool],
    ) -> None:
        self._services = services
        self._step = step
        self._allocator = allocator
        self._handles = handles
        self._replaced = ReplacedVersions()

    async def reconcile(self, key: str) -> Requeue | None:
        """Program the ADC for the Service ``key`` if it shows an address lbctl holds for it;
        raises ``AdcNotReady`` (retried with backoff) while the ADC is not configured."""
        raw = self._services.get(key)
        if raw is None:
            self._replaced.forget(key)
            return None
        service = ServiceView.from_raw(raw)
        if self._replaced.outdated(service):
            return None
        self._replaced.forget(key)
        if service.deleting or not self._handles(service):
            return None
        addresses = self.shown(service)
        if addresses:
            if await self._step.ensure(raw, service, addresses, lambda: self._wanted(service)):
                self._replaced.replaced(key, [service.resource_version])
        elif not service.ingress_addresses() and not any(
            self._allocator.get(owner) for owner in (key, secondary_owner(key))
        ):
            # It waits: it shows nothing and lbctl holds no address for it (e.g. a sharer
            # whose ports came to clash, with nowhere to go); its objects on the ADC would
            # hold ports of the address it left.  Either alone is no proof: anyone may clear
            # a status, and a Vip deleted by hand lets go of the address until it is held
            # again.
            await self._step.remove(raw, key, known=False)
        return None

    def _wanted(self, service: ServiceView) -> bool:
        """The Service as cached now is the one being configured, and still lbctl's to
        configure (a removal that ran first leaves nothing to add)."""
        raw = self._services.get(service.key)
        now = ServiceView.from_raw(raw) if raw is not None else None
        return (
            now is not None and now.uid == service.uid and not now.deleting
            and self._handles(now)
        )  # fmt: skip

    def shown(self, service: ServiceView) -> list[IPAddress]:
        """The addresses lbctl holds for the Service (for its current ports) and the Service
        shows, in the order it shows them (the first family first)."""
        held = {
            allocation.address
            for owner in (service.key, secondary_owner(service.key))
            if (allocation := self._allocator.get(owner)) is not None
            # A sharer's new ports are not the ADC's to program before IPAM accepted them
            # beside the other sharers (it may have to move or let go instead).
            and (allocation.share_key is None or allocation.ports == service.ports)
        }
        return [a for a in service.ingress_addresses() if a in held]
