"""Chaos and failover: random Service churn while lbctl is SIGKILLed, the apiserver restarts
and the NetScaler misbehaves; then every invariant must hold.

Short by default (CI); ``LBCTL_CHAOS_OPS=1000 pytest -m chaos -s`` runs the full form, and
``LBCTL_CHAOS_SEED`` replays a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import time
from collections import Counter
from pathlib import Path

import pytest

from lbctl.adc.plan import Node
from lbctl.devenv.controlplane import LocalControlPlane
from lbctl.kube.client import SERVICES, KubeClient
from lbctl.kube.errors import NotFound
from lbctl.kube.leader import LEASES
from lbctl.nitro.simulator import Simulator
from tests.integration.chaos_harness import (
    OPS,
    PREFIX,
    SEED,
    Churn,
    Lbctl,
    check_invariants,
    converge,
)
from tests.integration.fault_proxy import FaultProxy
from tests.integration.invariants import ShownAddresses, leaked_records, leaks_after
from tests.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


def faulty(simulator: Simulator) -> None:
    simulator.faults.error_rate = 0.1
    simulator.faults.latency = 0.005


def healthy(simulator: Simulator) -> None:
    simulator.faults.error_rate = 0.0
    simulator.faults.latency = 0.0


async def test_chaos_run_keeps_every_invariant(
    kube: KubeClient, namespace: str, control_plane: LocalControlPlane,
    sim: tuple[Simulator, str], chaos_nodes: list[Node], tmp_path: Path,
) -> None:  # fmt: skip
    simulator, url = sim
    nodes = chaos_nodes
    rng = random.Random(SEED)
    churn = Churn(kube, namespace, rng)
    log = tmp_path / "lbctl.log"
    lbctl = Lbctl(control_plane, url, log, "chaos-0", leader=False)
    kills = apiserver_restarts = expiries = 0
    faulty(simulator)
    try:
        for i in range(OPS):
            await churn.step()
            if i % 25 == 24:
                lbctl.kill()
                kills += 1
                lbctl = Lbctl(control_plane, url, log, f"chaos-{kills}", leader=False)
            if i % 40 == 20:
                simulator.expire_sessions()
                expiries += 1
            if i == OPS // 2:
                control_plane.restart_apiserver()
                apiserver_restarts += 1
            await asyncio.sleep(rng.uniform(0, 0.05))
        healthy(simulator)
        problems = await converge(kube, namespace, simulator, nodes, within=90)
    finally:
        lbctl.stop()
    print(
        f"\nchaos seed={SEED} ops={OPS} {dict(churn.counts)} lbctl kills={kills} "
        f"apiserver restarts={apiserver_restarts} session expiries={expiries} "
        f"NITRO requests={len(simulator.requests)} (503s injected: "
        f"{sum(r.status == 503 for r in simulator.requests)})"
    )
    assert not problems, "\n".join(problems) + f"\n(logs: {log.parent})"
    # The checker itself can fail: an orphaned object of ours on the ADC is reported.
    simulator.store.add("lbvserver", {"name": f"{PREFIX}-x_y_80-tcp_lbv", "servicetype": "TCP",
                                      "ipv46": "10.120.0.63", "port": 80, "comment": "x"})  # fmt: skip
    orphaned = await check_invariants(kube, namespace, simulator, nodes)
    assert any("orphaned" in p for p in orphaned), orphaned


async def lease_holder(kube: KubeClient) -> str | None:
    try:
        lease = await kube.get(LEASES, "default", "lbctl-chaos")
    except NotFound:
        return None
    holder = lease["spec"].get("holderIdentity")
    return str(holder) if holder else None


async def test_failover_under_churn_keeps_every_invariant(
    kube: KubeClient, namespace: str, control_plane: LocalControlPlane,
    sim: tuple[Simulator, str], chaos_nodes: list[Node], tmp_path: Path,
) -> None:  # fmt: skip
    simulator, url = sim
    nodes = chaos_nodes
    rng = random.Random(SEED + 1)
    churn = Churn(kube, namespace, rng)
    log = tmp_path / "lbctl.log"
    replicas = {f"r{i}": Lbctl(control_plane, url, log, f"r{i}", leader=True) for i in range(2)}
    failovers: list[float] = []
    counter = 2
    try:
        for i in range(OPS):
            await churn.step()
            if i % 30 == 29:
                holder = await lease_holder(kube)
                leader = next((k for k in replicas if holder and holder.startswith(f"{k}_")), None)
                if leader is not None:
                    replicas.pop(leader).kill()
                    killed_at = time.monotonic()
                    name = f"r{counter}"
                    counter += 1
                    replicas[name] = Lbctl(control_plane, url, log, name, leader=True)
                    while True:
                        now = await lease_holder(kube)
                        if now is not None and not now.startswith(f"{leader}_"):
                            failovers.append(time.monotonic() - killed_at)
                            break
                        assert time.monotonic() - killed_at < 30, "no new leader"
                        await asyncio.sleep(0.05)
            await asyncio.sleep(rng.uniform(0, 0.05))
        problems = await converge(kube, namespace, simulator, nodes, within=90)
    finally:
        for replica in replicas.values():
            replica.stop()
        with contextlib.suppress(NotFound):
            await kube.delete(LEASES, "default", "lbctl-chaos")
    assert failovers, "no failover happened"
    print(
        f"\nfailover seed={SEED + 1} ops={OPS} {dict(churn.counts)} failovers={len(failovers)} "
        f"p50={statistics.median(failovers):.2f}s max={max(failovers):.2f}s"
    )
    assert not problems, "\n".join(problems) + f"\n(logs: {log.parent})"


async def test_split_brain_never_shows_an_address_twice(
    kube: KubeClient, namespace: str, control_plane: LocalControlPlane,
    sim: tuple[Simulator, str], chaos_nodes: list[Node], tmp_path: Path,
) -> None:  # fmt: skip
    """Two lbctl processes without leader election, churn in bursts and Vips deleted by hand:
    at no instant may two Services show one address; afterwards nothing leaks and the two
    settle (no more writes)."""
    simulator, url = sim
    rng = random.Random(SEED + 2)
    churn = Churn(kube, namespace, rng, hand_deletions=True)
    log = tmp_path / "lbctl.log"
    replicas = [Lbctl(control_plane, url, log, f"split-{i}", leader=False) for i in range(2)]
    try:
        async with ShownAddresses(kube, namespace) as watch:
            for _ in range(OPS):
                await churn.step()
                if rng.random() < 0.3:  # otherwise the next operation follows at once: bursts
                    await asyncio.sleep(rng.uniform(0, 0.05))
            problems = await converge(kube, namespace, simulator, chaos_nodes, within=90)
            seen = [watch.events, time.monotonic()]

            def settled() -> bool:
                if watch.events != seen[0]:
                    seen[:] = [watch.events, time.monotonic()]
                return time.monotonic() - seen[1] > 3

            await eventually(settled, within=60, what="no more Service writes")
            leaks = await leaks_after(kube, namespace, within=30)
    finally:
        for replica in replicas:
            replica.stop()
    print(f"\nsplit brain seed={SEED + 2} ops={OPS} {dict(churn.counts)} "
          f"service events watched={watch.events} raced={len(watch.raced)}")  # fmt: skip
    assert not watch.violations, "\n".join(watch.violations[:20]) + f"\n(logs: {log.parent})"
    assert not problems, "\n".join(problems) + f"\n(logs: {log.parent})"
    assert not leaks, leaks


async def test_lost_replies_through_a_fault_proxy_never_show_an_address_twice(
    kube: KubeClient, namespace: str, control_plane: LocalControlPlane,
    sim: tuple[Simulator, str], chaos_nodes: list[Node], tmp_path: Path,
) -> None:  # fmt: skip
    """Two lbctl processes without leader election talk to the apiserver through a proxy that
    applies every write but drops 10% of the replies (a fifth of those hang until lbctl's own
    timeout) and delays 5%: each lost reply leaves lbctl not knowing whether its write
    happened.  The watcher and the churn talk to the apiserver directly.  At no instant may two
    Services show one address; afterwards every invariant holds, the two settle (no write in
    flight or made for a while) and no address record is left naming a Service that does not
    show its address."""
    simulator, url = sim
    rng = random.Random(SEED + 3)
    churn = Churn(kube, namespace, rng, hand_deletions=True)
    log = tmp_path / "lbctl.log"
    proxy = FaultProxy.in_front_of(
        control_plane.kubeconfig, tmp_path, seed=SEED + 3, drop=0.10, hang=0.2, delay=0.05
    )
    async with proxy, ShownAddresses(kube, namespace) as watch:
        replicas = [
            Lbctl(control_plane, url, log, f"lossy-{i}", leader=False, kubeconfig=proxy.kubeconfig)
            for i in range(2)
        ]
        try:
            for _ in range(OPS):
                await churn.step()
                if rng.random() < 0.3:
                    await asyncio.sleep(rng.uniform(0, 0.05))
            problems = await converge(kube, namespace, simulator, chaos_nodes, within=120)
            leaks_at_convergence = await leaked_records(kube, namespace)
            last, quiet_since = [(watch.events, proxy.counts.total())], [time.monotonic()]

            def settled() -> bool:
                now = (watch.events, proxy.counts.total())
                if now != last[0] or proxy.in_flight:
                    last[0], quiet_since[0] = now, time.monotonic()
                return time.monotonic() - quiet_since[0] > 5

            await eventually(settled, within=90, what="no more lbctl writes")
            leaks = await leaks_after(kube, namespace, within=30)
            services_now = await describe_services(kube, namespace)
        finally:
            # In threads: the proxy in this loop must keep serving while lbctl shuts down.
            await asyncio.gather(*(asyncio.to_thread(r.stop) for r in replicas))
    print(f"\nlost replies seed={SEED + 3} ops={OPS} {dict(churn.counts)} {proxy.summary()} "
          f"service events watched={watch.events} raced={len(watch.raced)} "
          f"leaked records at convergence={leaks_at_convergence}")  # fmt: skip
    assert proxy.count("dropped"), "no reply dropped: the run proves nothing"
    assert proxy.count("delayed")
    failures = [*watch.violations[:20], *problems, *leaks]
    assert not failures, "\n".join(failures) + f"\nnow: {services_now}\n(logs: {log.parent})"


async def describe_services(kube: KubeClient, namespace: str) -> list[str]:
    """What each LoadBalancer Service shows now, for a failure message."""
    described = []
    for raw in (await kube.list(SERVICES, namespace))[0]:
        meta, status = raw["metadata"], raw.get("status") or {}
        ingress = [i.get("ip") for i in (status.get("loadBalancer") or {}).get("ingress") or []]
        notes = {
            k: v
            for k, v in (meta.get("annotations") or {}).items()
            if "citrix" in k or "lbctl" in k
        }
        ports = [f"{p['port']}/{p['protocol']}" for p in raw["spec"].get("ports") or []]
        described.append(
            f"{meta['name']} uid={meta['uid'][:8]} type={raw['spec']['type']} ingress={ingress} "
            f"{notes} ports={ports} deleting={bool(meta.get('deletionTimestamp'))}"
        )
    return described


@pytest.mark.parametrize("scope", ["class", "namespace"])
async def test_two_instances_on_one_pool_never_show_an_address_twice(
    kube: KubeClient, namespace: str, second_namespace: str, control_plane: LocalControlPlane,
    sim: tuple[Simulator, str], chaos_nodes: list[Node], tmp_path: Path, scope: str,
) -> None:  # fmt: skip
    """Two lbctl instances, scoped by class (the class-less one and one of a class; Services
    of either, type flips that may come back with the other) or by namespace, share one pool, one prefix and one
    NetScaler: under churn at no instant may two Services of either show one address, and
    afterwards every invariant holds for both, ADC objects included (neither removes the
    other's)."""
    simulator, url = sim
    rng = random.Random(SEED + 5)
    log = tmp_path / "lbctl.log"
    if scope == "class":  # the default instance and one of a class: the usual pair
        classes = (None, "lbctl.io/x")
        churns = [Churn(kube, namespace, rng, hand_deletions=True, classes=classes)]
        flags = [(), ("--load-balancer-class", "lbctl.io/x")]
    else:
        churns = [Churn(kube, ns, rng, hand_deletions=True) for ns in (namespace, second_namespace)]
        flags = [("--namespace", ns) for ns in (namespace, second_namespace)]
    spaces = (namespace, second_namespace)
    instances = [
        Lbctl(control_plane, url, log, f"{scope}-{i}", leader=False, scope=each)
        for i, each in enumerate(flags)
    ]
    try:
        async with ShownAddresses(kube, None) as watch:
            for _ in range(OPS):
                await rng.choice(churns).step()
                if rng.random() < 0.3:
                    await asyncio.sleep(rng.uniform(0, 0.05))
            problems = await converge(kube, spaces, simulator, chaos_nodes, within=90)
            leaks = [p for ns in spaces for p in await leaks_after(kube, ns, within=30)]
    finally:
        for instance in instances:
            instance.stop()
    counts = sum((c.counts for c in churns), Counter[str]())
    print(f"\ntwo instances by {scope} seed={SEED + 5} ops={OPS} {dict(counts)} "
          f"service events watched={watch.events} raced={len(watch.raced)}")  # fmt: skip
    assert not watch.violations, "\n".join(watch.violations[:20]) + f"\n(logs: {log.parent})"
    assert not problems, "\n".join(problems) + f"\n(logs: {log.parent})"
    assert not leaks, leaks
