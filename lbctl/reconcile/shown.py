"""Which Services show which address, kept current from the Service informer.

The durable records decide who may hold an address, but a record can be edited or deleted by
hand; what a Service shows (``com.citrix.vip``, ``status.loadBalancer.ingress``) is what
clients use.  So before lbctl shows an address on a Service it also checks that no other
Service shows it, unless both share it by key: a second line of defence that costs no request.
"""

from __future__ import annotations

from lbctl.kube.client import JSON
from lbctl.kube.informer import object_key
from lbctl.model import IPAddress, ServiceView


class ShownIndex:
    """Informer handler: address → the keys of the Services showing it."""

    def __init__(self) -> None:
        self._by_address: dict[IPAddress, set[str]] = {}
        self._of: dict[str, frozenset[IPAddress]] = {}

    def __call__(self, kind: str, old: JSON | None, new: JSON | None) -> None:
        obj = new if new is not None else old
        if obj is None:
            return
        key = object_key(obj)
        now: frozenset[IPAddress] = frozenset()
        if new is not None and kind != "DELETED":
            now = frozenset(ServiceView.from_raw(new).held_addresses())
        before = self._of.pop(key, frozenset())
        for address in before - now:
            keys = self._by_address.get(address)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_address[address]
        for address in now - before:
            self._by_address.setdefault(address, set()).add(key)
        if now:
            self._of[key] = now

    def others(self, address: IPAddress, key: str) -> set[str]:
        """The Services other than ``key`` that show ``address``."""
        return self._by_address.get(address, set()) - {key}
