"""Service reconciler: finalizer, a Vip holding the address, annotation and status.

Level-triggered: it reads the latest Service and Vip from the informer caches, compares them
with what they should be, and writes only the difference (merge patches, never replaces).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from lbctl.ipam.allocator import Allocation, Allocator
from lbctl.kube.client import SERVICES, VIPS, KubeClient
from lbctl.kube.errors import AlreadyExists, Conflict, Invalid, KubeError, NotFound
from lbctl.kube.events import EventRecorder
from lbctl.kube.informer import Informer
from lbctl.model import (
    LB_FINALIZER,
    VIP_ANNOTATION,
    IPAddress,
    ServiceView,
    VipView,
    vip_for_service,
)
from lbctl.reconcile.claims import Claimed, Request, claim, request_of

log = structlog.get_logger(__name__)

RETRY_PENDING_AFTER = 60.0


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
    ) -> None:
        self._client = client
        self._services = services
        self._vips = vips
        self._allocator = allocator
        self._recorder = recorder
        self._class = load_balancer_class
        self._on_release = on_release
        self.waiting: set[str] = set()
        """Services waiting for an address; requeued whenever one is released."""
        self._superseded: dict[str, set[str]] = {}
        """Service key → resourceVersions written by lbctl and already overwritten by its own
        next write: an event for one of them is skipped, the final version's event follows."""

    def _release(self, key: str, token: str | None = None) -> Allocation | None:
        """Free ``key``'s address and wake whoever waits for one."""
        released = self._allocator.release(key, token=token)
        if released is not None:
            self._on_release()
        return released

    def handles(self, service: ServiceView) -> bool:
        return service.is_load_balancer and service.load_balancer_class == self._class

    async def reconcile(self, key: str) -> Requeue | None:
        namespace, name = key.split("/", 1)
        raw = self._services.get(key)
        if raw is None:
            await self._delete_orphan_vip(namespace, name, service_uid=None)
            self.waiting.discard(key)
            self._superseded.pop(key, None)
            return None
        service = ServiceView.from_raw(raw)
        if service.resource_version in self._superseded.get(key, ()):
            return None
        if service.load_balancer_class not in (None, self._class):
            return None
        try:
            if self.handles(service) and not service.deleting:
                return await self._ensure(raw, service)
            await self._cleanup(raw, service)
        except KubeError as err:
            if not isinstance(err, Conflict):
                await self._recorder.record(raw, "Warning", "SyncLoadBalancerFailed", str(err))
            raise
        return None

    async def _ensure(self, raw: dict[str, Any], service: ServiceView) -> Requeue | None:
        written: list[str] = []
        if not service.has_finalizer:
            await self._recorder.record(
                raw, "Normal", "EnsuringLoadBalancer", "Ensuring load balancer"
            )
            # The finalizer list is replaced whole, so guard it with the resourceVersion.
            finalizers = [*service.finalizers, LB_FINALIZER]
            written.append(
                await self._patch_metadata(
                    service,
                    {"finalizers": finalizers, "resourceVersion": service.resource_version},
                )
            )
        vip = self._current_vip(service)
        address = vip.address if vip is not None else None
        if vip is not None and address is not None:
            holder = self._allocator.holder(address)
            if holder is None or holder.owner != service.key:
                owner = holder.owner if holder else "nobody"
                await self._recorder.record(
                    raw, "Warning", "AddressConflict",
                    f"Vip {service.key} records {address}, which is held by {owner}; not used",
                )  # fmt: skip
                return Requeue(RETRY_PENDING_AFTER)
            address = await self._follow_request(raw, service, vip, address)
        if vip is None and self._name_taken(service):
            await self._recorder.record(
                raw,
                "Warning",
                "VipNameConflict",
                f"Vip {service.key} exists and belongs to something else; rename or delete it",
            )
            return Requeue(RETRY_PENDING_AFTER)
        if vip is None:
            await self._delete_orphan_vip(service.namespace, service.name, service.uid)
            address = self._created_but_not_cached(service)
        if vip is None and address is None:
            claimed = await self._claim_address(raw, service)
            if claimed is None or isinstance(claimed, Requeue):
                return claimed
            address = claimed
            if not await self._create_vip(service, address):
                return Requeue(1.0)
        if address is None:
            return None
        self.waiting.discard(service.key)
        published = await self._publish(service, address)
        if published:
            pool = self._allocator.pool_of(address) or "none"
            await self._recorder.record(
                raw, "Normal", "EnsuredLoadBalancer", f"Assigned IP {address} (pool {pool})"
            )
        self._remember(service.key, written + published)
        return None

    async def _follow_request(
        self, raw: dict[str, Any], service: ServiceView, vip: VipView, current: IPAddress
    ) -> IPAddress:
        """Move to a newly requested address when it is free; otherwise keep the current one."""
        request = request_of(service)
        wanted = request.address if isinstance(request, Request) else None
        if wanted is None or wanted == current:
            return current
        holder = self._allocator.holder(wanted)
        problem = None
        if self._allocator.pool_of(wanted) is None:
            problem = f"requested address {wanted} is not in any VIP_RANGE pool"
        elif holder is not None and holder.owner != service.key:
            problem = f"requested address {wanted} is held by {holder.owner}"
            self.waiting.add(service.key)
        if problem is not None:
            message = f"{problem}; keeping {current}"
            await self._recorder.record(raw, "Warning", "AllocationFailed", message)
            return current
        self._allocator.assign(service.key, wanted, token=vip.uid)
        patch = {
            "metadata": {"resourceVersion": vip.resource_version},
            "spec": {"ipaddress": str(wanted), "pool": self._allocator.pool_of(wanted)},
        }
        try:
            await self._client.patch(VIPS, service.namespace, service.name, patch)
        except KubeError:
            self._allocator.assign(service.key, current, token=vip.uid)
            raise
        self.waiting.discard(service.key)
        self._on_release()
        log.info("vip moved to requested address", vip=service.key, old=str(current),
                 new=str(wanted))  # fmt: skip
        return wanted

    def _remember(self, key: str, written: list[str]) -> None:
        if len(written) > 1:
            self._superseded[key] = set(written[:-1])
        else:
            self._superseded.pop(key, None)

    def _created_but_not_cached(self, service: ServiceView) -> IPAddress | None:
        """The address of a Vip this process created whose ADDED event has not arrived yet."""
        allocation = self._allocator.get(service.key)
        if allocation is None or allocation.token is None or self._vips.get(service.key):
            return None
        return allocation.address

    def _current_vip(self, service: ServiceView) -> VipView | None:
        raw = self._vips.get(service.key)
        if raw is None:
            return None
        vip = VipView.from_raw(raw)
        if vip.deleting or vip.service not in (None, service.name):
            return None
        if vip.service_uid not in (None, service.uid):
            return None
        return vip

    def _name_taken(self, service: ServiceView) -> bool:
        """A Vip of the Service's name exists that lbctl neither made nor may take over."""
        raw = self._vips.get(service.key)
        return raw is not None and not VipView.from_raw(raw).managed

    async def _claim_address(
        self, raw: dict[str, Any], service: ServiceView
    ) -> IPAddress | Requeue | None:
        """The address for a Service without a Vip; else what to do (retry later or wait for
        the Service to change), with a Warning Event saying why."""
        request = request_of(service)
        if isinstance(request, Request):
            pending = self._allocator.get(service.key)
            if pending is not None and request.address not in (None, pending.address):
                self._release(service.key)
            result = claim(self._allocator, service, request)
        else:
            result = request
        if isinstance(result, Claimed):
            return result.address
        await self._recorder.record(raw, "Warning", result.reason, result.message)
        log.info("no address for service", service=service.key, reason=result.message)
        if result.waits_for_release:
            self.waiting.add(service.key)
            return Requeue(RETRY_PENDING_AFTER)
        self.waiting.discard(service.key)
        return None

    async def _create_vip(self, service: ServiceView, address: IPAddress) -> bool:
        allocation = self._allocator.get(service.key)
        body = vip_for_service(service, address, allocation.pool if allocation else None)
        try:
            created = await self._client.create(VIPS, service.namespace, body)
        except AlreadyExists:
            log.info("vip exists but is not cached yet", vip=service.key)
            return False
        except Invalid:
            self._release(service.key)
            raise
        vip = VipView.from_raw(created)
        self._allocator.bind_token(service.key, vip.uid)
        log.info("vip created", vip=service.key, address=str(address))
        return True

    async def _publish(self, service: ServiceView, address: IPAddress) -> list[str]:
        """Write the annotation and the status where they differ; the versions written."""
        text = str(address)
        written = []
        if service.annotations.get(VIP_ANNOTATION) != text:
            written.append(
                await self._patch_metadata(service, {"annotations": {VIP_ANNOTATION: text}})
            )
        if service.ingress_ips != (text,):
            status = {"loadBalancer": {"ingress": [{"ip": text, "ipMode": "Proxy"}]}}
            updated = await self._client.patch(
                SERVICES, service.namespace, service.name, {"status": status}, subresource="status"
            )
            written.append(str(updated["metadata"]["resourceVersion"]))
            log.info("service status written", service=service.key, address=text)
        return written

    async def _cleanup(self, raw: dict[str, Any], service: ServiceView) -> None:
        """Undo everything for a Service that is going away or is no longer ours."""
        self.waiting.discard(service.key)
        raw_vip = self._vips.get(service.key)
        managed_vip = raw_vip is not None and VipView.from_raw(raw_vip).managed
        pending = raw_vip is None and self._allocator.get(service.key) is not None
        if not (service.has_finalizer or managed_vip or pending):
            return
        await self._recorder.record(raw, "Normal", "DeletingLoadBalancer", "Deleting load balancer")
        released = await self._delete_orphan_vip(service.namespace, service.name, None)
        if released is None and raw_vip is None:
            released = self._release(service.key)
        resource_version = service.resource_version
        if service.ingress_ips:
            updated = await self._client.patch(
                SERVICES,
                service.namespace,
                service.name,
                {"status": {"loadBalancer": {"ingress": None}}},
                subresource="status",
            )
            resource_version = updated["metadata"]["resourceVersion"]
        metadata: dict[str, Any] = {}
        if VIP_ANNOTATION in service.annotations:
            metadata["annotations"] = {VIP_ANNOTATION: None}
        if service.has_finalizer:
            metadata["finalizers"] = [f for f in service.finalizers if f != LB_FINALIZER]
            metadata["resourceVersion"] = resource_version
        if metadata:
            await self._patch_metadata(service, metadata)
        self._superseded.pop(service.key, None)
        shown = service.held_addresses()
        address = released.address if released is not None else (shown[0] if shown else None)
        if address is not None:
            await self._recorder.record(
                raw, "Normal", "DeletedLoadBalancer", f"Released IP {address}"
            )
        log.info("service cleaned up", service=service.key)

    async def _delete_orphan_vip(
        self,
        namespace: str,
        name: str,
        service_uid: str | None,
    ) -> Allocation | None:
        """Delete the managed Vip of this name unless it belongs to Service ``service_uid``;
        the allocation it released, if any."""
        key = f"{namespace}/{name}"
        raw = self._vips.get(key)
        if raw is None:
            return await self._delete_uncached_vip(key, namespace, name, service_uid)
        vip = VipView.from_raw(raw)
        if not vip.managed or vip.service != name:
            return None
        if service_uid is not None and vip.service_uid in (None, service_uid):
            return None
        held = self._allocator.get(key)
        with contextlib.suppress(NotFound):
            await self._client.delete(VIPS, namespace, name, uid=vip.uid)
        log.info("vip deleted", vip=key, address=vip.address_text)
        # The Vip's DELETED event may already have released it while the call was in flight.
        self._release(key, token=vip.uid)
        return held if held is not None and held.token == vip.uid else None

    async def _delete_uncached_vip(
        self, key: str, namespace: str, name: str, service_uid: str | None
    ) -> Allocation | None:
        """A Vip this process created whose ADDED event has not arrived: delete it by UID."""
        allocation = self._allocator.get(key)
        if allocation is None or allocation.token is None or service_uid is not None:
            return None
        with contextlib.suppress(NotFound):
            await self._client.delete(VIPS, namespace, name, uid=allocation.token)
        log.info("vip deleted", vip=key, address=str(allocation.address))
        self._release(key, token=allocation.token)
        return allocation

    async def _patch_metadata(self, service: ServiceView, metadata: dict[str, Any]) -> str:
        """Merge-patch the Service's metadata; the resourceVersion it now has."""
        updated = await self._client.patch(
            SERVICES, service.namespace, service.name, {"metadata": metadata}
        )
        return str(updated["metadata"]["resourceVersion"])
