"""The allocator's index of the durable address records, kept from their watch events.

Each ``VipAddress`` event updates the allocator's record of its address in event order, so
once the informer has listed, the allocator knows every address the apiserver records;
what a record lets go of wakes the Services waiting for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from lbctl.ipam.allocator import Allocator
from lbctl.kube.client import JSON
from lbctl.model import IPAddress
from lbctl.setmap import SetMap
from lbctl.vipaddress import AddressRecordView, Holder


class AddressTracker:
    """Informer handler: ``VipAddress`` events → the allocator's record index, and the
    addresses each holder key has on record."""

    def __init__(
        self,
        allocator: Allocator,
        enqueue_service: Callable[[str], None],
        on_release: Callable[[], None],
    ) -> None:
        self._allocator = allocator
        self._enqueue_service = enqueue_service
        self._on_release = on_release
        self._by_holder: SetMap[str, tuple[IPAddress, Holder]] = SetMap()
        """Holder key → (address, holder) for every record naming it (nearly always one: a
        SetMap holds it bare, where a dict per holder cost 230 bytes)."""
        self._holder_keys: SetMap[IPAddress, str] = SetMap()
        """The other way round (address → holder keys), so releasing one address at the end of
        a mass deletion costs O(1), not a scan of every holder."""
        self._indexed: dict[IPAddress, str] = {}
        """Address → UID of the record the index holds for it."""

    def __call__(self, kind: str, old: JSON | None, new: JSON | None) -> None:
        before = AddressRecordView.from_raw(old) if old is not None else None
        after = AddressRecordView.from_raw(new) if new is not None and kind != "DELETED" else None
        if before is not None and before.address is not None:
            for holder in before.holders:
                self._forget(holder.key, before.address)
            if self._indexed.get(before.address) == before.uid:
                del self._indexed[before.address]
        if after is not None and after.address is not None:
            self._indexed[after.address] = after.uid
            self._allocator.record(
                after.address, after.holder_keys, after.sharing_key, closed=after.deleting,
                ports={h.key: h.ports for h in after.holders},
            )  # fmt: skip
            for holder in after.holders:
                self._forget(holder.key, after.address)  # one entry per holder and address
                self._by_holder.add(holder.key, (after.address, holder))
                self._holder_keys.add(after.address, holder.key)
            if before is not None and _frees(before, after):
                self._on_release()  # a sharer left or freed a port: a waiter may fit now
        elif before is not None and before.address is not None:
            freed = self._allocator.unrecord(before.address)
            # The record left the cache: wake waiters even if ``gone`` freed the address in the
            # index already, since one woken then may have read the record here and waited again.
            if freed or after is None:
                self._on_release()
        for view in (before, after):
            for holder in view.holders if view is not None else ():
                if holder.kind == "Service":
                    self._enqueue_service(holder.key)

    def replay(self, records: Iterable[JSON]) -> None:
        """Rebuild the allocator's record index (cleared by the caller) from cached records."""
        self._by_holder.clear()
        self._holder_keys.clear()
        self._indexed.clear()
        for raw in records:
            self("ADDED", None, raw)

    def gone(self, address: IPAddress, uid: str) -> None:
        """The record of ``address`` with ``uid`` is gone from the apiserver (this process
        deleted it): free the address now rather than when the watch reports it.  If the watch
        has reported it already, and maybe a new record of the address since (another
        instance's claim), the index is left as it is."""
        if self._indexed.get(address) != uid:
            return
        del self._indexed[address]
        for key in self._holder_keys.get(address):
            self._forget(key, address)
        if self._allocator.unrecord(address):
            self._on_release()

    def _forget(self, key: str, address: IPAddress) -> None:
        for entry in self._by_holder.get(key):
            if entry[0] == address:
                self._by_holder.discard(key, entry)
        self._holder_keys.discard(address, key)

    def holder_keys(self) -> list[str]:
        """The keys of every holder some record names."""
        return list(self._by_holder)

    def held(self, key: str) -> dict[IPAddress, Holder]:
        """Address → holder, for every record naming holder ``key``."""
        return dict(self._by_holder.get(key))

    def recorded(
        self, key: str, kind: str = "Service", load_balancer_class: str | bool | None = True
    ) -> list[tuple[IPAddress, str]]:
        """(address, holder UID) of every record naming holder ``key`` of ``kind``, claimed by
        an instance of ``load_balancer_class`` (True: of any class)."""
        return [
            (a, h.uid)
            for a, h in self._by_holder.get(key)
            if h.kind == kind
            and (load_balancer_class is True or h.load_balancer_class == load_balancer_class)
        ]


def _frees(before: AddressRecordView, after: AddressRecordView) -> bool:
    """Whether a record's update let go of something a waiter may need: a holder, or a port
    of a holder that stays (adding ports frees nothing, so it wakes nobody)."""
    if before.holder_keys - after.holder_keys:
        return True
    ports = {h.key: h.ports for h in after.holders}
    return any(h.ports - ports.get(h.key, frozenset()) for h in before.holders)
