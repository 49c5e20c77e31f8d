"""``lbctl status``: pools and allocations as the cluster records them (tables, JSON or YAML).

The pools are read from the cluster: the ``VIP_RANGE`` of lbctl's ConfigMap (or one given)
combined with the ``VipPool`` objects as the controller combines them.  It rebuilds the
allocator from the Vips and the ``VipAddress`` records exactly as the controller does at
start-up, so what it prints is what a (re)starting lbctl would believe: an address recorded
for anyone (another instance, a Vip deleted by hand) is in use.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from lbctl.ipam.allocator import Allocator
from lbctl.ipam.poolset import VIP_POOL, combine, parse_pool_object
from lbctl.ipam.ranges import Pool, RangeError, parse_vip_range
from lbctl.kube.client import (
    CONFIG_MAPS,
    JSON,
    SERVICES,
    VIP_ADDRESSES,
    VIP_POOLS,
    VIPS,
    KubeClient,
    Resource,
    api_client_from,
)
from lbctl.kube.errors import KubeError, NotFound
from lbctl.kube.informer import by_age, object_key
from lbctl.model import ServiceView, VipView
from lbctl.reconcile.address_index import AddressTracker
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


class CrdMissing(KubeError):
    """An lbctl resource the apiserver does not serve: its CRD is not installed."""


async def _list(client: KubeClient, resource: Resource, namespace: str | None) -> list[JSON]:
    try:
        items, _ = await client.list(resource, namespace)
    except NotFound as err:
        if not resource.group:
            raise
        raise CrdMissing(
            f"{resource.api_version} {resource.plural} is not served: is the "
            f"CustomResourceDefinition {resource.plural}.{resource.group} installed? "
            "(kubectl apply --server-side -f charts/lbctl/crds/)"
        ) from err
    return items


async def report(
    client: KubeClient,
    static: tuple[Pool, ...],
    namespace: str | None,
    load_balancer_class: str | None = None,
) -> JSON:
    """``{"pools": [...], "allocations": [...]}``: per pool and family its origin, counts and
    whether it is in effect (with the reason when not); one entry per allocation."""
    objects = await _list(client, VIP_POOLS, None)
    pool_set = combine(static, [parse_pool_object(raw) for raw in objects])
    vips = await _list(client, VIPS, namespace)
    services = await _list(client, SERVICES, namespace)
    records = await _list(client, VIP_ADDRESSES, None)
    rows, allocator = rows_and_allocator(
        pool_set.pools, vips, services, records, namespace, load_balancer_class
    )
    by_name = {p.name: p for p in pool_set.pools}
    pools: list[JSON] = [
        {"name": s.name, "origin": by_name[s.name].origin, "family": f"IPv{s.version}",
         "total": s.total, "inUse": s.in_use, "free": s.free,
         "state": "Disabled" if by_name[s.name].disabled else "Ready"}
        for s in allocator.stats()
    ]  # fmt: skip
    pools += [
        {"name": name, "origin": VIP_POOL, "family": "-", "total": 0, "inUse": 0, "free": 0,
         "state": reason, "message": message}
        for name, (reason, message) in sorted(pool_set.left_out.items())
    ]  # fmt: skip
    return {
        "pools": pools,
        "allocations": [
            {"address": r.vip, "holder": r.service, "pool": r.pool, "state": r.state} for r in rows
        ],
    }


def render(found: JSON) -> str:
    """The report as two tables, as ``kubectl get`` prints."""
    pool_rows = [
        [p["name"], p["origin"], p["family"], str(p["total"]), str(p["inUse"]), str(p["free"]),
         p["state"]]
        for p in found["pools"]
    ]  # fmt: skip
    headers = ["POOL", "FROM", "FAMILY", "TOTAL", "IN USE", "FREE", "STATE"]
    allocations = [[a["address"], a["holder"], a["pool"], a["state"]] for a in found["allocations"]]
    return (
        table(headers, pool_rows) + "\n\n" + table(["VIP", "SERVICE", "POOL", "STATE"], allocations)
    )


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lbctl status",
        description="Show lbctl's pools (VIP_RANGE and VipPool objects) and every allocation "
        "as the cluster records them.",
    )
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"),
                        help="kubeconfig file (env KUBECONFIG); default: in-cluster")  # fmt: skip
    parser.add_argument("-n", "--namespace", help="only allocations in this namespace")
    parser.add_argument(
        "--load-balancer-class", help="the class of the lbctl instance to look at (default: none)"
    )
    parser.add_argument(
        "--vip-range",
        default=os.environ.get("VIP_RANGE"),
        help="the VIP_RANGE lbctl runs with (env VIP_RANGE); default: the VIP_RANGE key of "
        "the ConfigMap given by --config",
    )
    parser.add_argument(
        "--vip-range-file",
        default=os.environ.get("VIP_RANGE_FILE"),
        help="read the VIP_RANGE from this file (env VIP_RANGE_FILE, set in lbctl's pod, where "
        "its ServiceAccount may not read the ConfigMap)",
    )
    parser.add_argument(
        "--config",
        default="lbctl-system/lbctl-config",
        help="namespace/name of lbctl's ConfigMap (default: lbctl-system/lbctl-config)",
    )
    parser.add_argument("-o", "--output", choices=["table", "json", "yaml"], default="table")
    return parser


async def vip_range_of(client: KubeClient, args: argparse.Namespace) -> str:
    """The VIP_RANGE to report: --vip-range, else the file lbctl reads it from, else the key
    of lbctl's ConfigMap."""
    if args.vip_range is not None:
        return str(args.vip_range)
    if args.vip_range_file:
        return await asyncio.to_thread(Path(args.vip_range_file).read_text)
    namespace, _, name = str(args.config).partition("/")
    try:
        found = await client.get(CONFIG_MAPS, namespace, name)
    except NotFound:
        return ""  # no ConfigMap: VipPool objects only
    return str((found.get("data") or {}).get("VIP_RANGE") or "")


async def _run(args: argparse.Namespace) -> str:
    client = KubeClient(await api_client_from(args.kubeconfig))
    try:
        static = parse_vip_range(await vip_range_of(client, args))
        found = await report(client, static, args.namespace, args.load_balancer_class)
    finally:
        await client.close()
    if args.output == "json":
        return json.dumps(found, indent=2)
    if args.output == "yaml":
        return yaml.safe_dump(found, sort_keys=False).rstrip()
    return render(found)


def main(argv: Sequence[str]) -> int:
    """Exit 0 with the report on stdout; 2 for bad flags or a VIP_RANGE lbctl refuses; 1 when
    the cluster cannot be read (the error on stderr)."""
    args = parser().parse_args(argv)
    try:
        print(asyncio.run(_run(args)))
    except RangeError as err:
        print(f"lbctl status: {err}", file=sys.stderr)
        return 2
    except (KubeError, OSError) as err:
        print(f"lbctl status: {err}", file=sys.stderr)
        return 1
    return 0
