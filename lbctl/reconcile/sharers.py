"""Whether an address may be shown beside the Services that already show it.

The durable records arbitrate claims, but the sharing they admit depends on fields users
edit at any time (``lbctl.io/allow-shared-ip``, ports): before a Service shows an address
others show, they are read again from the apiserver, and the address is left alone while
any two of its showers conflict (one of them is about to move; joining now would show the
address on a set that may not share it).
"""

from __future__ import annotations

import itertools

from lbctl.kube.client import SERVICES, KubeClient
from lbctl.kube.errors import NotFound
from lbctl.model import IPAddress, ServiceView
from lbctl.reconcile import desired
from lbctl.reconcile.addresses import AddressRecords
from lbctl.reconcile.shown import ShownIndex


class Sharers:
    def __init__(self, client: KubeClient, shown: ShownIndex, addresses: AddressRecords) -> None:
        self._client = client
        self._shown = shown
        self._addresses = addresses

    def _candidates(self, service: ServiceView, address: IPAddress) -> list[str]:
        """The other Services that may show ``address``: those the cache sees showing it, and
        the record's holders of the Service's namespace (sharing keys are scoped to it; one
        that showed it a moment ago may not be in the cache yet)."""
        keys = self._shown.others(address, service.key)
        record = self._addresses.cached(address)
        for holder in record.holders if record is not None else ():
            if holder.kind == "Service" and holder.namespace == service.namespace:
                keys.add(holder.key)
        keys.discard(service.key)
        return sorted(keys)

    async def conflict(
        self, service: ServiceView, address: IPAddress, among_others: bool = True
    ) -> str | None:
        """Why ``service`` may not show ``address`` beside the other Services showing it (a
        record edited by hand, a sharer whose key or ports a user just changed), or None.

        Each is read from the apiserver (a quorum read), so an edit the cache has not seen
        yet is not missed.  With ``among_others``, two showers that conflict with each other
        are a reason too."""
        live: list[ServiceView] = []
        for key in self._candidates(service, address):
            namespace, name = key.split("/", 1)
            try:
                other = ServiceView.from_raw(await self._client.get(SERVICES, namespace, name))
            except NotFound:
                continue
            if address not in other.held_addresses():
                continue
            if not desired.may_share(service, other):
                return f"{address} is shown by {key}, which may not share it"
            live.append(other)
        for one, two in itertools.combinations(live if among_others else [], 2):
            if not desired.may_share(one, two):
                return f"{address} is shown by {one.key} and {two.key}, which conflict"
        return None
