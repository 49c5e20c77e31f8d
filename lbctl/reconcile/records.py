"""The Vip records of Services: find, create, fill, move, mark and delete them.

Every change to a record goes together with the allocator, so that what the allocator holds
and what the Vips say never drift apart, and every release wakes Services waiting for an
address.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import structlog

from lbctl.ipam.allocator import Allocation, Allocator
from lbctl.kube.client import VIPS, KubeClient
from lbctl.kube.errors import AlreadyExists, Invalid, KubeError, NotFound
from lbctl.kube.informer import Informer
from lbctl.model import (
    CLASS_ANNOTATION,
    REQUESTED_POOL_ANNOTATION,
    IPAddress,
    ServiceView,
    VipView,
    ports_text,
    secondary_owner,
    vip_for_service,
)
from lbctl.reconcile.addresses import Sharing
from lbctl.reconcile.vip import MOVING
from lbctl.reconcile.vipstatus import write_vip_status

log = structlog.get_logger(__name__)


class VipRecords:
    def __init__(
        self,
        client: KubeClient,
        vips: Informer,
        allocator: Allocator,
        on_release: Callable[[], None],
    ) -> None:
        self._client = client
        self._vips = vips
        self._allocator = allocator
        self._on_release = on_release

    def release(self, key: str, token: str | None = None) -> Allocation | None:
        """Free ``key``'s address (both families of a dual-stack Service) and wake whoever
        waits for one; the first family's allocation, if it had one."""
        released = self._allocator.release(key, token=token)
        second = self._allocator.release(secondary_owner(key), token=token)
        if released is not None or second is not None:
            self._on_release()
        return released

    def release_primary(self, key: str) -> None:
        if self._allocator.release(key) is not None:
            self._on_release()

    def release_secondary(self, key: str) -> None:
        if self._allocator.release(secondary_owner(key)) is not None:
            self._on_release()

    async def set_ports(self, vip: VipView, ports: frozenset[tuple[str, int]]) -> None:
        """Record the ports a sharing Service uses, so a restart rebuilds the sharing."""
        if vip.ports == ports:
            return
        patch = {"spec": {"ports": ports_text(ports)}}
        await self._client.patch(VIPS, vip.namespace, vip.name, patch)

    async def set_sharing(self, vip: VipView, sharing: Sharing) -> None:
        """Record a new sharing key (and the ports it shares) of a Service that keeps its
        address, guarded by the resourceVersion the Vip was read at."""
        key, ports = sharing
        if vip.share_key == key and (vip.ports == ports or key is None):
            return
        spec = {
            "sharingKey": key.split("/", 1)[1] if key else None,
            "ports": ports_text(ports) if key else None,
        }
        patch = {"metadata": {"resourceVersion": vip.resource_version}, "spec": spec}
        await self._client.patch(VIPS, vip.namespace, vip.name, patch)

    async def set_secondary(self, vip: VipView, address: IPAddress | None) -> None:
        """Record (or clear) the second family's address on the Vip."""
        text = str(address) if address is not None else None
        if vip.secondary_text == text:
            return
        await self._client.patch(
            VIPS, vip.namespace, vip.name, {"spec": {"secondaryIpaddress": text}}
        )
        if address is not None:
            self._allocator.bind_token(secondary_owner(vip.key), vip.uid)

    def current(self, service: ServiceView) -> VipView | None:
        """The Vip recording this Service's address (with or without one yet)."""
        raw = self._vips.get(service.key)
        if raw is None:
            return None
        vip = VipView.from_raw(raw)
        made_for_it = vip.managed and vip.service_uid == service.uid  # spec.service edited?
        if vip.deleting or (vip.service not in (None, service.name) and not made_for_it):
            return None
        if vip.service_uid not in (None, service.uid):
            return None
        return vip

    async def adopt(
        self, vip: VipView, service: ServiceView, load_balancer_class: str | None
    ) -> VipView:
        """Make a Vip lbctl made for ``service`` say so again: its class annotation names this
        instance's class (none for the class-less one) after the Service changed class while
        another instance had it, so that one no longer takes the Service for its own; and
        ``spec.service`` names the Service again after a hand edit.  The Vip as written."""
        metadata: dict[str, Any] = {}
        spec: dict[str, Any] = {}
        if vip.managed and vip.load_balancer_class != load_balancer_class:
            metadata["annotations"] = {CLASS_ANNOTATION: load_balancer_class}
        if vip.managed and vip.service not in (None, service.name):
            spec["service"] = service.name
        if not metadata and not spec:
            return vip  # in place, or a Vip made by hand: the user's to mark
        patch = {"metadata": metadata, "spec": spec}
        updated = await self._client.patch(VIPS, vip.namespace, vip.name, patch)
        log.info("vip adopted", vip=vip.key, load_balancer_class=load_balancer_class or "",
                 service=service.name)  # fmt: skip
        return VipView.from_raw(updated)

    def name_taken(self, service: ServiceView) -> bool:
        """A Vip of the Service's name exists that lbctl neither made nor may take over."""
        raw = self._vips.get(service.key)
        return raw is not None and not VipView.from_raw(raw).managed

    def created_but_not_cached(self, service: ServiceView) -> IPAddress | None:
        """The address of a Vip this process created whose ADDED event has not arrived yet."""
        allocation = self._allocator.get(service.key)
        if allocation is None or allocation.token is None or self._vips.get(service.key):
            return None
        return allocation.address

    async def create(
        self,
        service: ServiceView,
        address: IPAddress | None,
        status: dict[str, Any],
    ) -> VipView | None:
        """Create the Service's Vip (``address`` None: a pending record); None if one exists
        that the cache does not show yet."""
        allocation = self._allocator.get(service.key) if address is not None else None
        pool = allocation.pool if allocation else None
        share_key = allocation.share_key if allocation else None
        body = {**vip_for_service(service, address, pool, share_key), "status": status}
        try:
            created = await self._client.create(VIPS, service.namespace, body)
        except AlreadyExists:
            log.info("vip exists but is not cached yet", vip=service.key)
            return None
        except Invalid:
            if address is not None:
                self.release(service.key)
            raise
        vip = VipView.from_raw(created)
        if address is not None:
            self._allocator.bind_token(service.key, vip.uid)
        log.debug("vip created", vip=service.key, address=str(address or ""))
        return vip

    async def set_status(self, vip: VipView, status: dict[str, Any]) -> None:
        """Patch the Vip's status when it changed (``vipstatus``)."""
        await write_vip_status(self._client, vip, status)

    async def _write_address(
        self,
        vip: VipView,
        address: IPAddress,
        sharing: Sharing | None = None,
        requested: str | None = None,
    ) -> None:
        """Set the Vip's address and pool (and, when ``sharing`` is given, its sharing key and
        ports), guarded by the resourceVersion it was read at."""
        spec: dict[str, Any] = {
            "ipaddress": str(address),
            "pool": self._allocator.pool_of(address) or "",
        }
        held = self._allocator.get(vip.key)
        if sharing is None and held is not None and held.address == address and held.share_key:
            sharing = (held.share_key, held.ports)
        if sharing is not None:
            key, ports = sharing
            spec["sharingKey"] = key.split("/", 1)[1] if key else None
            spec["ports"] = ports_text(ports) if key else None
        metadata: dict[str, Any] = {"resourceVersion": vip.resource_version}
        if requested is not None:
            metadata["annotations"] = {REQUESTED_POOL_ANNOTATION: requested}
        await self._client.patch(
            VIPS, vip.namespace, vip.name, {"metadata": metadata, "spec": spec}
        )

    async def set_requested(self, vip: VipView, requested: str) -> None:
        """Record the pool the Service names now ("": none) without moving it (its address
        already lies in that pool), guarded by the version the Vip was read at."""
        if vip.requested_pool is None or vip.requested_pool == requested:
            return
        annotations = {REQUESTED_POOL_ANNOTATION: requested}
        patch = {"metadata": {"resourceVersion": vip.resource_version, "annotations": annotations}}
        await self._client.patch(VIPS, vip.namespace, vip.name, patch)

    async def clear(self, vip: VipView) -> None:
        """Empty the address of a Vip that records one its Service may not hold (guarded by
        the resourceVersion it was read at): the Vip waits, Pending, like a new one."""
        if vip.address_text:
            spec = {"ipaddress": "", "pool": "", "secondaryIpaddress": None}
            patch = {"metadata": {"resourceVersion": vip.resource_version}, "spec": spec}
            await self._client.patch(VIPS, vip.namespace, vip.name, patch)
            log.info("vip address cleared", vip=vip.key, address=vip.address_text)

    async def fill(self, vip: VipView, address: IPAddress) -> None:
        """Put a claimed address into a pending Vip."""
        try:
            await self._write_address(vip, address)
        except KubeError:
            self.release(vip.key)
            raise
        self._allocator.bind_token(vip.key, vip.uid)

    async def move(
        self,
        vip: VipView,
        current: IPAddress,
        wanted: IPAddress,
        sharing: Sharing | None = None,
        requested: str | None = None,
    ) -> None:
        """Re-point the Vip from ``current`` to the free address ``wanted`` (shared under
        ``sharing``'s key and ports, when given; ``requested``: the pool asked for, recorded).

        ``wanted`` is held under a placeholder owner while the write is in flight, and
        ``current`` is released only once the Vip no longer records it.
        """
        key, ports = sharing if sharing is not None else (None, frozenset())
        placeholder = f"{vip.key}{MOVING}"
        self._allocator.assign(placeholder, wanted, share_key=key, ports=ports)
        try:
            await self._write_address(vip, wanted, sharing, requested)
        finally:
            self._allocator.release(placeholder)
        self._allocator.assign(vip.key, wanted, token=vip.uid, share_key=key, ports=ports)
        self._on_release()
        log.info("vip moved", vip=vip.key, old=str(current), new=str(wanted))

    async def delete_orphan(
        self, namespace: str, name: str, service_uid: str | None
    ) -> Allocation | None:
        """Delete the managed Vip of this name unless it belongs to Service ``service_uid``;
        the allocation it released, if any.  lbctl names the Vip it makes after its Service,
        so a managed Vip whose ``spec.service`` was edited by hand to name another Service is
        still this one's (and goes with it)."""
        key = f"{namespace}/{name}"
        raw = self._vips.get(key)
        if raw is None:
            return await self._delete_uncached(key, namespace, name, service_uid)
        vip = VipView.from_raw(raw)
        if not vip.managed or (vip.service != name and service_uid is not None):
            return None
        if service_uid is not None and vip.service_uid in (None, service_uid):
            return None
        held = self._allocator.get(key)
        with contextlib.suppress(NotFound):
            await self._client.delete(VIPS, namespace, name, uid=vip.uid)
        log.info("vip deleted", vip=key, address=vip.address_text)
        # The Vip's DELETED event may already have released it while the call was in flight.
        self.release(key, token=vip.uid)
        return held if held is not None and held.token == vip.uid else None

    async def _delete_uncached(
        self, key: str, namespace: str, name: str, service_uid: str | None
    ) -> Allocation | None:
        """A Vip this process created whose ADDED event has not arrived: delete it by UID."""
        allocation = self._allocator.get(key)
        if allocation is None or allocation.token is None or service_uid is not None:
            return None
        with contextlib.suppress(NotFound):
            await self._client.delete(VIPS, namespace, name, uid=allocation.token)
        log.info("vip deleted", vip=key, address=str(allocation.address))
        self.release(key, token=allocation.token)
        return allocation
