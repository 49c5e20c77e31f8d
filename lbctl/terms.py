"""What a leadership term does before its workers start: an index rebuilt from what the
apiserver records, the addresses Services show held again, stale records released.

Start-up order matters for safety: no worker may hand out an address before the index holds
every address recorded in a Vip, a ``VipAddress`` record or shown on a Service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from lbctl.ipam.allocator import AddressInUse
from lbctl.kube.client import VIPS
from lbctl.kube.errors import KubeError
from lbctl.kube.informer import by_age
from lbctl.kube.supervise import retrying
from lbctl.model import ServiceView, secondary_owner

if TYPE_CHECKING:
    from lbctl.app import Runtime

log = structlog.get_logger(__name__)


def reserve_shown_addresses(runtime: Runtime) -> None:
    """Hold addresses that Services already show but no Vip records (e.g. a Vip deleted by hand)."""
    for key, raw in runtime.services.items():
        service = ServiceView.from_raw(raw)
        if not runtime.service_reconciler.handles(service) or runtime.vips.get(key) is not None:
            continue
        owners = dict(zip(service.families, (key, secondary_owner(key)), strict=False))
        for address in service.held_addresses():
            owner = owners.get(address.version)
            if owner is None or runtime.allocator.pool_of(address) is None:
                continue
            if runtime.allocator.get(owner) is not None:
                continue
            try:
                runtime.allocator.assign(owner, address)
            except AddressInUse as err:
                log.warning(
                    "address shown on service is held elsewhere",
                    service=key,
                    address=str(address),
                    holder=err.holder,
                )


async def rebuild_index(runtime: Runtime, namespace: str | None) -> None:
    """Rebuild the allocator before a leadership term from what the apiserver records: the
    address records (kept current by their informer) and a fresh (quorum) list of Vips.

    A new leader's Vip watch may trail the old leader's last writes by a moment, which the
    fresh list closes; and a term aborted mid-reconcile may have left an address held in
    memory only, which starting from the records forgets.  A failing apiserver is retried
    with backoff: leading without this list is unsafe, exiting is worse.
    """
    items, _ = await retrying("list Vips", lambda: runtime.client.list(VIPS, namespace))
    runtime.allocator.clear()
    runtime.tracker.conflicts.clear()
    runtime.address_tracker.replay(raw for _, raw in runtime.address_records.items())
    for item in sorted(items, key=by_age):
        runtime.tracker("MODIFIED", None, item)
    runtime.service_reconciler.shown.reblock()  # after the Vips: it never displaces them


async def release_stale_records(runtime: Runtime, namespace: str | None) -> None:
    """Free the addresses of Services and Vips deleted while no lbctl ran, before anything is
    allocated (so a restart hands out the lowest free address, as before it)."""

    def live(kind: str, key: str) -> str | None:
        raw = (runtime.services if kind == "Service" else runtime.vips).get(key)
        return str(raw["metadata"].get("uid")) if raw is not None else None

    try:
        released = await runtime.service_reconciler.addresses.sweep(namespace, live)
    except KubeError as err:
        log.warning("could not release stale address records; will retry", error=str(err))
        return
    if released:
        log.info("released address records of deleted holders", records=released)
