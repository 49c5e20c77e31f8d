"""Which Services show which address, kept current from the Service informer.

The durable records decide who may hold an address, but a record can be edited or deleted by
hand, and a Service lbctl does not manage (another controller's, another instance's class)
may show an address of lbctl's pools without any record; what a Service shows
(``com.citrix.vip``, ``status.loadBalancer.ingress``) is what clients use.  So the addresses
shown by Services lbctl does not manage are blocked in the allocator (nobody is given them
while they are shown), and before lbctl shows an address on a Service it checks that no other
Service shows it, unless both share it by key: a second line of defence that costs no request.
"""

from __future__ import annotations

from collections.abc import Callable

from lbctl.ipam.allocator import Allocator
from lbctl.kube.client import JSON
from lbctl.kube.informer import object_key
from lbctl.model import IPAddress, ServiceView
from lbctl.setmap import SetMap


class ShownIndex:
    """Informer handler: address → the keys of the Services showing it; the addresses shown by
    Services that ``manages`` rejects are blocked in ``allocator``."""

    def __init__(
        self,
        allocator: Allocator | None = None,
        manages: Callable[[ServiceView], bool] = lambda _: True,
        on_release: Callable[[], None] = lambda: None,
    ) -> None:
        self._by_address: SetMap[IPAddress, str] = SetMap()
        self._of: dict[str, tuple[IPAddress, ...]] = {}
        """Service key → the addresses it shows (a tuple: a third of a one-address set)."""
        self._allocator = allocator
        self._manages = manages
        self._on_release = on_release
        self._blocked: dict[str, frozenset[IPAddress]] = {}
        """Service key → the addresses it blocks (it shows them and lbctl does not manage it)."""

    def __call__(self, kind: str, old: JSON | None, new: JSON | None) -> None:
        obj = new if new is not None else old
        if obj is None:
            return
        key = object_key(obj)
        now: frozenset[IPAddress] = frozenset()
        blocks: frozenset[IPAddress] = frozenset()
        if new is not None and kind != "DELETED":
            view = ServiceView.from_raw(new)
            now = frozenset(view.held_addresses())
            blocks = now if now and not self._manages(view) else frozenset()
        before = frozenset(self._of.pop(key, ()))
        unshown = False
        for address in before - now:
            unshown = self._by_address.discard(address, key) or unshown
        for address in now - before:
            self._by_address.add(address, key)
        if now:
            self._of[key] = tuple(now)
        if self._block(key, blocks) or unshown:
            self._on_release()  # wakes a Service waiting to show an address no one shows now

    def _block(self, key: str, blocks: frozenset[IPAddress]) -> bool:
        """Block ``blocks`` for ``key`` and unblock what it no longer shows; True when that
        freed an address."""
        if self._allocator is None:
            return False
        before = self._blocked.pop(key, frozenset())
        freed = False
        for address in before - blocks:
            freed = self._allocator.unblock(address, key) or freed
        for address in blocks - before:
            self._allocator.block(address, key)
        if blocks:
            self._blocked[key] = blocks
        return freed

    def reblock(self) -> None:
        """Block again every address blocked so far (the allocator was cleared for a rebuild)."""
        if self._allocator is not None:
            for key, addresses in self._blocked.items():
                for address in addresses:
                    self._allocator.block(address, key)

    def showing(self, address: IPAddress) -> set[str]:
        """The Services that show ``address``."""
        return set(self._by_address.get(address))

    def others(self, address: IPAddress, key: str) -> set[str]:
        """The Services other than ``key`` that show ``address``."""
        return set(self._by_address.get(address)) - {key}
