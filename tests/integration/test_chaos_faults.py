"""Two more churn harnesses: a leader frozen past its Lease and resumed, and hand edits made
while lbctl is down.  Watched at every instant; short by default, ``LBCTL_CHAOS_OPS`` for the
long form, ``LBCTL_CHAOS_SEED`` to replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time
from pathlib import Path

import pytest

from lbctl.adc.plan import Node
from lbctl.devenv.controlplane import LocalControlPlane
from lbctl.kube.client import SERVICES, VIP_ADDRESSES, VIPS, KubeClient
from lbctl.kube.errors import KubeError, NotFound
from lbctl.kube.leader import LEASES
from lbctl.nitro.simulator import Simulator
from tests.integration.chaos_harness import NAMES, OPS, SEED, Churn, Lbctl, converge
from tests.integration.invariants import ShownAddresses, leaks_after
from tests.integration.test_chaos import lease_holder
from tests.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


async def test_a_frozen_leader_resumed_never_shows_an_address_twice(
    kube: KubeClient, namespace: str, control_plane: LocalControlPlane,
    sim: tuple[Simulator, str], chaos_nodes: list[Node], tmp_path: Path,
) -> None:  # fmt: skip
    """Two leader-elected replicas under churn; every 25 operations the leader is frozen
    (SIGSTOP) until the other holds the Lease, the churn goes on, then it is resumed."""
    simulator, url = sim
    rng = random.Random(SEED + 3)
    churn = Churn(kube, namespace, rng, hand_deletions=True)
    log = tmp_path / "lbctl.log"
    replicas = {f"f{i}": Lbctl(control_plane, url, log, f"f{i}", leader=True) for i in range(2)}
    freezes = 0
    try:
        await eventually(lambda: lease_holder(kube), within=30, what="a leader")
        async with ShownAddresses(kube, namespace) as watch:
            for i in range(OPS):
                await churn.step()
                await asyncio.sleep(rng.uniform(0, 0.05))
                if i % 25 != 24:
                    continue
                holder = await lease_holder(kube)
                leader = next((k for k in replicas if holder and holder.startswith(f"{k}_")), None)
                if leader is None:
                    continue
                replicas[leader].process.send_signal(signal.SIGSTOP)
                freezes += 1
                try:

                    async def taken_over(frozen: str = leader) -> bool:
                        now = await lease_holder(kube)
                        return now is not None and not now.startswith(f"{frozen}_")

                    deadline = time.monotonic() + 30
                    while not await taken_over():  # churn goes on while the leader is frozen
                        assert time.monotonic() < deadline, "the standby never took over"
                        await churn.step()
                        await asyncio.sleep(0.05)
                finally:
                    replicas[leader].process.send_signal(signal.SIGCONT)
            problems = await converge(kube, namespace, simulator, chaos_nodes, within=90)
            leaks = await leaks_after(kube, namespace, within=30)
    finally:
        for replica in replicas.values():
            replica.stop()
        with contextlib.suppress(NotFound):
            await kube.delete(LEASES, "default", "lbctl-chaos")
    print(f"\nfrozen leader seed={SEED + 3} ops={OPS} {dict(churn.counts)} freezes={freezes} "
          f"service events watched={watch.events} raced={len(watch.raced)}")  # fmt: skip
    assert freezes > 0
    assert not watch.violations, "\n".join(watch.violations[:20]) + f"\n(logs: {log.parent})"
    assert not problems, "\n".join(problems) + f"\n(logs: {log.parent})"
    assert not leaks, leaks


async def hand_edit(kube: KubeClient, namespace: str, rng: random.Random) -> str:
    """One edit a user (or garbage collection) might make while lbctl is down."""
    existing = [s["metadata"]["name"] for s in (await kube.list(SERVICES, namespace))[0]]
    name = rng.choice(existing or NAMES)
    edit = rng.choice(["vip-delete", "vip-address", "finalizer", "type", "record-delete"])
    if edit == "vip-delete":
        await kube.delete(VIPS, namespace, name)
    elif edit == "vip-address":
        patch = {"spec": {"ipaddress": f"10.120.0.{rng.randint(1, 62)}"}}
        await kube.patch(VIPS, namespace, name, patch)
    elif edit == "finalizer":
        await kube.patch(SERVICES, namespace, name, {"metadata": {"finalizers": None}})
    elif edit == "type":
        current = await kube.get(SERVICES, namespace, name)
        spec = {"type": "ClusterIP", "externalTrafficPolicy": None,
                "allocateLoadBalancerNodePorts": None,
                "ports": [{**p, "nodePort": None} for p in current["spec"]["ports"]]}  # fmt: skip
        await kube.patch(SERVICES, namespace, name, {"spec": spec})
    else:
        shown = (await kube.get(SERVICES, namespace, name)).get("status", {})
        ingress = (shown.get("loadBalancer") or {}).get("ingress") or [{}]
        await kube.delete(VIP_ADDRESSES, None, str(ingress[0].get("ip") or "none"))
    return edit


async def caught_up(kube: KubeClient, namespace: str) -> bool:
    """Every LoadBalancer Service has its Vip (with an address, or Pending)."""
    services, _ = await kube.list(SERVICES, namespace)
    vips = {v["metadata"]["name"] for v in (await kube.list(VIPS, namespace))[0]}
    wanted = {s["metadata"]["name"] for s in services if s["spec"]["type"] == "LoadBalancer"}
    return wanted <= vips


async def test_hand_edits_while_lbctl_is_down_never_show_an_address_twice(
    kube: KubeClient, namespace: str, control_plane: LocalControlPlane,
    sim: tuple[Simulator, str], chaos_nodes: list[Node], tmp_path: Path,
) -> None:  # fmt: skip
    """Churn with lbctl running; every 20 operations it is killed, Vips are deleted or
    re-pointed, finalizers removed, types flipped and address records deleted by hand, and
    it is started again."""
    simulator, url = sim
    rng = random.Random(SEED + 4)
    churn = Churn(kube, namespace, rng)
    log = tmp_path / "lbctl.log"
    lbctl = Lbctl(control_plane, url, log, "down-0", leader=False)
    edits: dict[str, int] = {}
    restarts = 0
    try:
        async with ShownAddresses(kube, namespace) as watch:
            for i in range(OPS):
                await churn.step()
                await asyncio.sleep(rng.uniform(0, 0.05))
                if i % 20 != 19:
                    continue
                # Let lbctl catch up first, so the edits meet Vips and records to break.
                await eventually(lambda: caught_up(kube, namespace), within=60, what="caught up")
                lbctl.kill()
                for _ in range(rng.randint(2, 5)):
                    try:
                        edit = await hand_edit(kube, namespace, rng)
                    except KubeError as err:
                        edit = f"refused ({type(err).__name__})"
                    edits[edit] = edits.get(edit, 0) + 1
                restarts += 1
                lbctl = Lbctl(control_plane, url, log, f"down-{restarts}", leader=False)
            problems = await converge(kube, namespace, simulator, chaos_nodes, within=90)
            leaks = await leaks_after(kube, namespace, within=30)
    finally:
        lbctl.stop()
    print(f"\nhand edits while down seed={SEED + 4} ops={OPS} {dict(churn.counts)} "
          f"edits={edits} restarts={restarts} service events watched={watch.events} raced={len(watch.raced)}")  # fmt: skip
    assert restarts > 0
    assert not watch.violations, "\n".join(watch.violations[:20]) + f"\n(logs: {log.parent})"
    assert not problems, "\n".join(problems) + f"\n(logs: {log.parent})"
    assert not leaks, leaks
