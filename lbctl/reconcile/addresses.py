"""Durable address records: one cluster-scoped ``VipAddress`` per address in use.

Uniqueness is the apiserver's, not this process's: a ``VipAddress`` is named by its address
(as Kubernetes names its own ``IPAddress`` objects since KEP-1880), so a second claim of an
address fails with AlreadyExists whatever any lbctl process believes, and a sharer joins the
record by an update guarded by its resourceVersion.  lbctl writes an address to a Vip or a
Service only after the record names the holder, and deletes the record only after no holder
shows the address any more.  A reply lost on the way back is resolved by reading the record
back, never by rolling back.  The allocator is an index of these records (kept by
``address_index.AddressTracker``).
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Callable
from typing import Any

import structlog

from lbctl.ipam.allocator import Allocator
from lbctl.kube.client import SERVICES, VIP_ADDRESSES, VIPS, KubeClient, Resource
from lbctl.kube.errors import AlreadyExists, Conflict, KubeUnavailable, NotFound
from lbctl.kube.informer import Informer
from lbctl.model import IPAddress, ServiceView, secondary_owner
from lbctl.reconcile.address_index import AddressTracker
from lbctl.vipaddress import AddressRecordView, Holder, address_record, record_name

log = structlog.get_logger(__name__)

Sharing = tuple[str | None, frozenset[tuple[str, int]]]
"""(sharing key, ports) a holder claims an address with."""


PRUNE_AFTER = 10.0
"""Seconds a Service's own record must have existed before lbctl releases it as unused."""


def _time_left(record: AddressRecordView, seconds: float) -> float:
    """Seconds until ``record`` is ``seconds`` old (0 when it is, or its age is unknown)."""
    try:
        created = datetime.datetime.fromisoformat(record.created.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    age = (datetime.datetime.now(datetime.UTC) - created).total_seconds()
    return max(0.0, seconds - age)


class AddressTaken(Exception):
    """The apiserver records the address for someone else (and joining is not allowed)."""

    def __init__(self, address: IPAddress, holders: frozenset[str], deleting: bool = False) -> None:
        held = f"recorded for {', '.join(sorted(holders))}" if holders else "recorded"
        state = " and being deleted (it goes once no Service shows it)" if deleting else ""
        super().__init__(f"{address} is {held}{state}")
        self.address = address
        self.holders = holders


class AddressRecords:
    """Claim, verify and release ``VipAddress`` records (the writes behind the index)."""

    def __init__(
        self,
        client: KubeClient,
        records: Informer,
        allocator: Allocator,
        tracker: AddressTracker,
        load_balancer_class: str | None = None,
    ) -> None:
        self._class = load_balancer_class
        self._client = client
        self._records = records
        self._allocator = allocator
        self._tracker = tracker

    def cached(self, address: IPAddress) -> AddressRecordView | None:
        raw = self._records.get(record_name(address))
        return AddressRecordView.from_raw(raw) if raw is not None else None

    async def fresh(self, address: IPAddress) -> AddressRecordView | None:
        """The record as the apiserver has it now (a quorum read), or None."""
        try:
            return AddressRecordView.from_raw(
                await self._client.get(VIP_ADDRESSES, None, record_name(address))
            )
        except NotFound:
            return None

    async def claim(self, address: IPAddress, holder: Holder, sharing_key: str | None) -> bool:
        """Make the record of ``address`` name ``holder`` (creating or joining it); True when
        this call wrote it, False when the record already said so.

        Raises ``AddressTaken`` when the record names others that ``holder`` may not join,
        ``Conflict`` when the record changed under a join (retry), ``KubeError`` otherwise.
        """
        record = self.cached(address)
        if record is not None and self._names(record, holder):
            alone = [h.uid for h in record.holders] == [holder.uid]
            if record.sharing_key == sharing_key or not alone:
                return False  # (a lone holder's new sharing key is written by a join)
        if record is None:
            body = address_record(address, holder, self._allocator.pool_of(address), sharing_key)
            try:
                await self._client.create(VIP_ADDRESSES, None, body)
                # debug: the Service's status write logs the outcome at info, once
                log.debug("address recorded", address=str(address), holder=holder.key)
                return True
            except AlreadyExists:
                record = await self.fresh(address)
            except KubeUnavailable:
                record = await self._read_back(address)
            if record is None:
                raise Conflict(409, "Conflict", f"VipAddress {record_name(address)} vanished")
            if self._names(record, holder):
                return True
        return await self._join(address, record, holder, sharing_key)

    async def _read_back(self, address: IPAddress) -> AddressRecordView | None:
        """After a lost reply: what the apiserver made of the write (a failure here raises)."""
        record = await self.fresh(address)
        log.info("address claim reply lost; read back", address=str(address), found=bool(record))
        return record

    @staticmethod
    def _names(record: AddressRecordView, holder: Holder) -> bool:
        """The record names ``holder`` as it is (a record deleted by hand but kept by its
        finalizer still does: its name, the address, stays taken until the holder lets go)."""
        return record.holder(holder.uid) == holder

    async def _join(
        self,
        address: IPAddress,
        record: AddressRecordView,
        holder: Holder,
        sharing_key: str | None,
    ) -> bool:
        # A holder of the same key with another UID is an earlier incarnation of this Service:
        # names are unique at any instant, so that one is gone.
        others = [h for h in record.holders if h.uid != holder.uid and h.key != holder.key]
        joinable = sharing_key is not None and record.sharing_key == sharing_key
        if record.deleting and record.holder(holder.uid) is None:
            raise AddressTaken(address, frozenset(h.key for h in others), deleting=True)
        if others and not joinable:
            raise AddressTaken(address, frozenset(h.key for h in others))
        for other in others:
            if other.ports & holder.ports:
                raise AddressTaken(address, frozenset({other.key}))
        holders = [*(h.to_json() for h in others), holder.to_json()]
        spec: dict[str, Any] = {"holders": holders}
        if not others:
            spec["sharingKey"] = sharing_key
        patch = {"metadata": {"resourceVersion": record.resource_version}, "spec": spec}
        await self._client.patch(VIP_ADDRESSES, None, record.name, patch)
        log.info("address joined", address=str(address), holder=holder.key)
        return True

    async def release(self, address: IPAddress, uid: str, any_class: bool = False) -> bool:
        """Drop holder ``uid`` (claimed by this instance's class, or by any with
        ``any_class``) from the record of ``address``; the last holder deletes it.  Call only
        once that holder no longer shows the address.  True when it wrote."""
        record = self.cached(address)
        holder = record.holder(uid) if record is not None else None
        if record is None or holder is None:
            return False
        if not any_class and holder.load_balancer_class != self._class:
            return False
        others = [h.to_json() for h in record.holders if h.uid != uid]
        if others:
            patch = {
                "metadata": {"resourceVersion": record.resource_version},
                "spec": {"holders": others},
            }
            await self._client.patch(VIP_ADDRESSES, None, record.name, patch)
            log.info("address released", address=str(address), holder=holder.key)
            return True
        if not record.deleting:
            try:
                await self._client.delete(
                    VIP_ADDRESSES, None, record.name,
                    uid=record.uid, resource_version=record.resource_version,
                )  # fmt: skip
            except NotFound:
                self._tracker.gone(address, record.uid)
                return True
        with contextlib.suppress(NotFound):
            await self._client.patch(
                VIP_ADDRESSES, None, record.name, {"metadata": {"finalizers": None}}
            )
        self._tracker.gone(address, record.uid)
        log.info("address record deleted", address=str(address))
        return True

    async def hold(
        self, service: ServiceView, address: IPAddress, sharing: Sharing | None = None
    ) -> bool:
        """Make the record of ``address`` name the Service, with the sharing key and ports
        given, or else those its allocation has; True when this call wrote (so the record is
        confirmed)."""
        if sharing is None:
            allocation = self._allocator.get(service.key)
            if allocation is None or allocation.address != address:
                allocation = self._allocator.get(secondary_owner(service.key))
            share_key = allocation.share_key if allocation is not None else None
            sharing = (share_key, allocation.ports if allocation is not None else frozenset())
        share_key, ports = sharing[0], sharing[1] if sharing[0] else frozenset()
        holder = Holder("Service", service.namespace, service.name, service.uid, ports, self._class)
        return await self.claim(address, holder, share_key)

    async def restate(self, service: ServiceView, address: IPAddress, sharing: Sharing) -> bool:
        """Rewrite the Service's entry in the record of ``address`` with ``sharing`` (key and
        ports), and make that the record's key: for sharers that all took a new key together
        (the caller checked that every other shower shares under it).  True when it wrote;
        ``Conflict`` when the record changed meanwhile (retry)."""
        record = self.cached(address)
        if record is None or record.holder(service.uid) is None:
            return False
        share_key, ports = sharing[0], sharing[1] if sharing[0] else frozenset()
        holder = Holder("Service", service.namespace, service.name, service.uid, ports, self._class)
        if record.sharing_key == share_key and record.holder(service.uid) == holder:
            return False
        holders = [(holder if h.uid == service.uid else h).to_json() for h in record.holders]
        patch = {
            "metadata": {"resourceVersion": record.resource_version},
            "spec": {"holders": holders, "sharingKey": share_key},
        }
        await self._client.patch(VIP_ADDRESSES, None, record.name, patch)
        log.info("address record re-keyed", address=str(address), key=share_key)
        return True

    async def confirm(self, service: ServiceView, address: IPAddress) -> bool:
        """Whether the apiserver's record of ``address`` names the Service right now: asked
        before showing an address that no write of this reconcile proved."""
        record = await self.fresh(address)
        return record is not None and not record.deleting and record.holder(service.uid) is not None

    def port_clash(self, address: IPAddress, service: ServiceView) -> str | None:
        """Another holder of the cached record of ``address`` that uses one of the Service's
        ports (the record names the sharers of every instance), described; else None."""
        record = self.cached(address)
        for other in record.holders if record is not None else ():
            common = other.ports & service.ports
            if other.uid != service.uid and other.key != service.key and common:
                protocol, port = sorted(common)[0]
                return (
                    f"{address} is held by {other.key}, which already uses port {port}/{protocol}"
                )
        return None

    def recorded(self, key: str, load_balancer_class: str | None) -> list[tuple[IPAddress, str]]:
        """The Service records this instance (of ``load_balancer_class``) made for ``key``."""
        return self._tracker.recorded(key, "Service", load_balancer_class)

    async def prune(
        self,
        service: ServiceView,
        keep: list[IPAddress],
        showing: Callable[[IPAddress], set[str]] = lambda _: set(),
    ) -> float | None:
        """Release records naming the Service (or an earlier Service of its name) for
        addresses it neither keeps nor shows: lost replies, moves, split-brain leftovers,
        records edited by hand.  A record of this very Service younger than ``PRUNE_AFTER``
        is left alone: another process may be between claiming it and showing it.  So is one
        naming only this Service for an address another Service shows (``showing``: the keys
        of the Services showing an address; a record edited by hand): the address stays
        taken, that Service says so in an Event, and the prune is tried again later.  The
        seconds until a record left alone may be pruned, or None."""
        shown = set(service.held_addresses())
        later: float | None = None
        mine = {service.key, secondary_owner(service.key)}
        for address, uid in self._tracker.recorded(service.key, "Service", self._class):
            if address in keep or (address in shown and uid == service.uid):
                continue
            record = self.cached(address)
            others = showing(address) - mine
            if others and record is not None and record.holder_keys <= mine:
                # A record edited by hand to name only this Service, for an address another
                # Service shows: deleting it would free an address in use.
                log.warning("address record names a service that does not show it",
                            address=str(address), service=service.key,
                            shown_by=sorted(others))  # fmt: skip
                later = min(PRUNE_AFTER, later or PRUNE_AFTER)
                continue
            wait = _time_left(record, PRUNE_AFTER) if uid == service.uid and record else 0.0
            if wait > 0:
                later = min(wait, later or wait)
                continue
            await self.release(address, uid)
        return later

    async def release_gone(self, namespace: str, name: str, resource: Resource = SERVICES) -> int:
        """Release every record naming ``namespace/name`` (a Service, or a hand-made Vip) once
        a quorum read shows no such object of that UID: a cache that trails another writer
        must not free an address a Service is about to show."""
        held = self._tracker.recorded(f"{namespace}/{name}", resource.kind)
        if not held:
            return 0
        try:
            live = (await self._client.get(resource, namespace, name))["metadata"]["uid"]
        except NotFound:
            live = None
        released = 0
        for address, uid in held:
            if uid != live and await self.release(address, uid, any_class=True):
                released += 1
        return released

    async def sweep(self, namespace: str | None, live: Callable[[str, str], str | None]) -> int:
        """Release the records of holders that no longer exist (deleted while no lbctl ran),
        within ``namespace`` (None: all); ``live(kind, key)`` is the cached holder's UID.
        Each is confirmed by a quorum read first; the number of records released."""
        released = 0
        for key in self._tracker.holder_keys():
            holder_namespace, name = key.split("/", 1)
            if namespace is not None and holder_namespace != namespace:
                continue
            held = self._tracker.held(key)
            for kind, resource in (("Service", SERVICES), ("Vip", VIPS)):
                uids = {h.uid for h in held.values() if h.kind == kind}
                if uids and uids != {live(kind, key)}:
                    released += await self.release_gone(holder_namespace, name, resource)
        return released
