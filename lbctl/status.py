"""``lbctl status``: pools and allocations as the cluster records them, as two tables.

It rebuilds the allocator from the Vips and the ``VipAddress`` records exactly as the
controller does at start-up, so what it prints is what a (re)starting lbctl would believe: an
address recorded for anyone (another instance, a Vip deleted by hand) is in use.
"""

from __future__ import annotations

from dataclasses import dataclass

from lbctl.ipam.allocator import Allocator
from lbctl.ipam.ranges import Pool
from lbctl.kube.client import JSON, SERVICES, VIP_ADDRESSES, VIPS, KubeClient
from lbctl.kube.informer import by_age, object_key
from lbctl.model import ServiceView, VipView
from lbctl.reconcile.addresses import AddressTracker
from lbctl.reconcile.shown import ShownIndex
from lbctl.reconcile.vip import VipTracker
from lbctl.vipaddress import AddressRecordView


@dataclass(frozen=True)
class Row:
    vip: str
    service: str
    pool: str
    state: str


def _state(vip: VipView, services: dict[str, JSON], conflicts: dict[str, str]) -> str:
    if vip.key in conflicts:
        return f"Conflict (held by {conflicts[vip.key]})"
    if vip.address is None:
        return "Pending" if not vip.address_text else "Invalid"
    if not vip.service:
        return "Reserved"
    raw = services.get(f"{vip.namespace}/{vip.service}")
    if raw is None:
        return "Orphaned"
    if vip.address in ServiceView.from_raw(raw).ingress_addresses():
        return "Allocated"
    return "Assigning"


def rows_and_allocator(
    pools: tuple[Pool, ...],
    vips: list[JSON],
    services: list[JSON],
    records: list[JSON],
    namespace: str | None = None,
    load_balancer_class: str | None = None,
) -> tuple[list[Row], Allocator]:
    """One row per Vip, and one per address record naming a holder in ``namespace`` (None:
    any) whose address no Vip shows; the allocator holds both, and the addresses shown by
    Services the instance of ``load_balancer_class`` does not manage, as the controller's."""
    allocator = Allocator(pools)
    tracker = VipTracker(allocator, lambda _: None, lambda _: None, lambda: None)
    AddressTracker(allocator, lambda _: None, lambda: None).replay(records)
    ordered = sorted(vips, key=by_age)
    for raw in ordered:
        tracker("ADDED", None, raw)

    def manages(service: ServiceView) -> bool:
        return service.is_load_balancer and service.load_balancer_class == load_balancer_class

    shown = ShownIndex(allocator, manages)
    for raw in services:
        shown("ADDED", None, raw)
    by_key = {object_key(raw): raw for raw in services}
    rows = []
    for raw in ordered:
        vip = VipView.from_raw(raw)
        allocation = allocator.get(vip.key)
        pool = (allocation.pool or "outside pools") if allocation else "-"
        service = f"{vip.namespace}/{vip.service}" if vip.service else "-"
        state = _state(vip, by_key, tracker.conflicts)
        rows.append(Row(vip.address_text or "-", service, pool, state))
    in_vips = {VipView.from_raw(raw).address for raw in ordered}
    for raw in records:
        record = AddressRecordView.from_raw(raw)
        holders = [h.key for h in record.holders if namespace in (None, h.namespace)]
        if record.address is None or record.address in in_vips or not holders:
            continue
        pool = allocator.pool_of(record.address) or "outside pools"
        rows.append(Row(str(record.address), ",".join(holders), pool, "Recorded (no Vip)"))
    return rows, allocator


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]  # fmt: skip
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
             for line in [headers, *rows]]  # fmt: skip
    return "\n".join(lines)


async def render(
    client: KubeClient,
    pools: tuple[Pool, ...],
    namespace: str | None,
    load_balancer_class: str | None = None,
) -> str:
    vips, _ = await client.list(VIPS, namespace)
    services, _ = await client.list(SERVICES, namespace)
    records, _ = await client.list(VIP_ADDRESSES, None)
    rows, allocator = rows_and_allocator(
        pools, vips, services, records, namespace, load_balancer_class
    )
    pool_rows = [
        [s.name, f"IPv{s.version}", str(s.total), str(s.in_use), str(s.free)]
        for s in allocator.stats()
    ]
    return (
        table(["POOL", "FAMILY", "TOTAL", "IN USE", "FREE"], pool_rows)
        + "\n\n"
        + table(
            ["VIP", "SERVICE", "POOL", "STATE"], [[r.vip, r.service, r.pool, r.state] for r in rows]
        )
    )
