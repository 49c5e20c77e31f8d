"""Chaos with pools changed live: VipPools created, grown, shrunk, disabled, overlapped and
deleted under Service churn while lbctl is SIGKILLed.  At no instant may two Services show one
address without valid sharing; afterwards every Service is served or says why it waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
from pathlib import Path
from typing import Any

import pytest

from lbctl.adc.plan import Node
from lbctl.devenv.controlplane import LocalControlPlane
from lbctl.kube.client import SERVICES, VIP_POOLS, VIPS, KubeClient
from lbctl.kube.errors import KubeError, NotFound
from lbctl.model import ServiceView, VipView
from lbctl.nitro.simulator import Simulator
from tests.integration.chaos_harness import OPS, SEED, Churn, Lbctl
from tests.integration.invariants import ShownAddresses, leaks_after
from tests.waiting import problems_left

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

POOL_EDITS: dict[str, dict[str, Any] | None] = {
    "pa-wide": {"addresses": ["10.121.0.0/27"]},
    "pa-narrow": {"addresses": ["10.121.0.0/29"]},
    "pa-off": {"addresses": ["10.121.0.0/28"], "disabled": True},
    "pa-on": {"addresses": ["10.121.0.0/28"], "disabled": False},
    "pb-on": {"addresses": ["10.121.0.8/29", "10.121.1.0/30"]},
    "pb-gone": None,
    "pc-on": {"addresses": ["10.121.2.0/30"], "avoidBuggyIPs": True, "priority": 1},
    "pc-gone": None,
}
"""Edits by name: ``pb`` overlaps ``pa`` unless ``pa`` is narrow (then addresses in use from
``pa``'s old blocks come under ``pb``); ``None`` deletes the pool."""
FINAL = {"pa": {"addresses": ["10.121.0.0/27"]}, "pb": None, "pc": None}


async def set_pool(kube: KubeClient, name: str, spec: dict[str, Any] | None) -> None:
    if spec is None:
        with contextlib.suppress(NotFound):
            await kube.delete(VIP_POOLS, None, name)
        return
    body = {"apiVersion": "ipam.citrix.com/v1", "kind": "VipPool",
            "metadata": {"name": name}, "spec": spec}  # fmt: skip
    try:
        await kube.patch(VIP_POOLS, None, name, {"spec": spec})
    except NotFound:
        await kube.create(VIP_POOLS, None, body)


async def served_or_told(kube: KubeClient, namespace: str) -> list[str]:
    """Every LoadBalancer Service shows an address its Vip records, or has a Pending Vip;
    no address is shown by two Services that may not share it."""
    problems: list[str] = []
    services = [ServiceView.from_raw(raw) for raw in (await kube.list(SERVICES, namespace))[0]]
    vips = {v.key: v for v in map(VipView.from_raw, (await kube.list(VIPS, namespace))[0])}
    by_address: dict[str, list[ServiceView]] = {}
    for service in services:
        if not service.is_load_balancer:
            continue
        vip = vips.get(service.key)
        if not service.ingress_ips:
            if vip is None or vip.status.get("state") != "Pending":
                problems.append(f"{service.key}: no address and no Pending Vip saying why")
            continue
        shown = service.ingress_ips[0]
        if vip is None or vip.address_text != shown:
            problems.append(f"{service.key}: shows {shown}, Vip says {vip and vip.address_text}")
        by_address.setdefault(str(ipaddress.ip_address(shown)), []).append(service)
    for address, holders in by_address.items():
        keys = {s.share_key for s in holders}
        ports = [p for s in holders for p in s.ports]
        if len(holders) > 1 and (None in keys or len(keys) > 1 or len(ports) != len(set(ports))):
            problems.append(f"{address} on {[s.key for s in holders]} without a valid sharing")
    return problems


async def test_live_pool_changes_under_churn_never_show_an_address_twice(
    kube: KubeClient, namespace: str, control_plane: LocalControlPlane,
    sim: tuple[Simulator, str], chaos_nodes: list[Node], tmp_path: Path,
) -> None:  # fmt: skip
    _, url = sim
    rng = random.Random(SEED + 11)
    churn = Churn(kube, namespace, rng, hand_deletions=True)
    log = tmp_path / "lbctl.log"
    flags = ("--vip-range", "[]")
    lbctl = Lbctl(control_plane, url, log, "pools-0", leader=False, scope=flags)
    edits = kills = 0
    try:
        await set_pool(kube, "pa", POOL_EDITS["pa-narrow"])
        async with ShownAddresses(kube, namespace) as watch:
            for i in range(OPS):
                if rng.random() < 0.2:
                    edit = rng.choice(sorted(POOL_EDITS))
                    with contextlib.suppress(KubeError):
                        await set_pool(kube, edit.split("-")[0], POOL_EDITS[edit])
                        edits += 1
                else:
                    await churn.step()
                if i % 30 == 29:
                    lbctl.kill()
                    kills += 1
                    lbctl = Lbctl(control_plane, url, log, f"pools-{kills}", False, scope=flags)
                await asyncio.sleep(rng.uniform(0, 0.03))
            for name, spec in FINAL.items():
                await set_pool(kube, name, spec)
            problems = await problems_left(lambda: served_or_told(kube, namespace), within=90)
            leaks = await leaks_after(kube, namespace, within=30)
    finally:
        lbctl.stop()
        for name in FINAL:
            await set_pool(kube, name, None)
    print(f"\npools chaos seed={SEED + 11} ops={OPS} {dict(churn.counts)} pool edits={edits} "
          f"kills={kills} service events watched={watch.events} raced={len(watch.raced)}")  # fmt: skip
    assert not watch.violations, "\n".join(watch.violations[:20]) + f"\n(logs: {log.parent})"
    assert not problems, "\n".join(problems) + f"\n(logs: {log.parent})"
    assert not leaks, leaks
