"""Lease leader election on the real apiserver: one leader, fast failover, no double work."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
import time

from lbctl.devenv.controlplane import LocalControlPlane
from lbctl.kube.client import SERVICES, VIPS, KubeClient
from lbctl.kube.leader import LEASES, LeaderElectionConfig, LeaderElector
from tests.integration.conftest import load_balancer, shown_ip
from tests.waiting import cancel_and_wait, eventually

FAST = {"lease_duration": 3.0, "renew_deadline": 2.0, "retry_period": 0.5}


def config(namespace: str, lease: str, identity: str) -> LeaderElectionConfig:
    return LeaderElectionConfig(namespace=namespace, name=lease, identity=identity, **FAST)


async def holder(kube: KubeClient, namespace: str, lease: str) -> str:
    try:
        found = await kube.get(LEASES, namespace, lease)
    except Exception:
        return ""
    return str((found.get("spec") or {}).get("holderIdentity") or "")


async def test_one_leads_and_a_released_lease_passes_on_at_once(
    kube: KubeClient, namespace: str
) -> None:
    """Two candidates: exactly one leads; on shutdown it releases and the other takes over."""
    leading: list[str] = []

    def candidate(name: str) -> tuple[LeaderElector, asyncio.Task[None]]:
        elector = LeaderElector(kube, config(namespace, "pair", name))

        async def lead() -> None:
            leading.append(name)
            await asyncio.Event().wait()

        return elector, asyncio.create_task(elector.run(lead))

    first, first_task = candidate("first")
    await eventually(lambda: first.is_leader, what="first leads")
    second, second_task = candidate("second")
    try:
        await eventually(lambda: second.attempts >= 3, what="second tried a few times")
        assert first.is_leader
        assert not second.is_leader
        assert leading == ["first"]

        started = time.monotonic()
        await cancel_and_wait(first_task)
        # is_leader turns true a step before the lead task runs: wait for the task itself.
        await eventually(lambda: leading == ["first", "second"], what="second takes over")
        assert time.monotonic() - started < FAST["lease_duration"], "release makes it immediate"
        assert second.is_leader
        assert await holder(kube, namespace, "pair") == "second"
    finally:
        await cancel_and_wait(second_task)


async def test_a_leader_that_cannot_renew_stops_before_its_lease_expires(
    kube: KubeClient, namespace: str, control_plane: LocalControlPlane
) -> None:
    """With the apiserver gone, the leader gives up within the renew deadline."""
    lost = asyncio.Event()
    elector = LeaderElector(kube, config(namespace, "alone", "solo"))

    async def lead() -> None:
        await asyncio.Event().wait()

    task = asyncio.create_task(elector.run(lead, on_lost=lost.set))
    try:
        await eventually(lambda: elector.is_leader, what="leads")
        control_plane.stop_apiserver()
        stopped = time.monotonic()
        await eventually(lost.is_set, within=10, what="gave up leading")
        assert not elector.is_leader
        assert time.monotonic() - stopped < FAST["lease_duration"]
    finally:
        control_plane.restart_apiserver()
        await cancel_and_wait(task)


async def test_failover_under_churn_never_hands_out_an_address_twice(
    kube: KubeClient, namespace: str, control_plane: LocalControlPlane
) -> None:
    """Kill -9 the leading process while 100 Services are created: the other takes over within
    lease duration + retry period, and every Service ends with its own address."""
    lease = f"lbctl-{secrets.token_hex(3)}"
    timing = [
        "--leader-elect-lease-duration", str(FAST["lease_duration"]),
        "--leader-elect-renew-deadline", str(FAST["renew_deadline"]),
        "--leader-elect-retry-period", str(FAST["retry_period"]),
    ]  # fmt: skip
    processes: dict[str, asyncio.subprocess.Process] = {}
    for name in ("lbctl-a", "lbctl-b"):
        env = dict(os.environ, VIP_RANGE='["10.79.0.0/24"]', POD_NAME=name)
        processes[name] = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lbctl",
            "--kubeconfig", str(control_plane.kubeconfig),
            "--namespace", namespace, "--metrics-bind-address", "0",
            "--leader-elect", "--leader-elect-namespace", namespace,
            "--leader-elect-lease-name", lease, *timing,
            env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
    try:
        first = await eventually(lambda: holder(kube, namespace, lease), what="a leader")
        leader = first.split("_")[0]
        standby = next(name for name in processes if name != leader)

        names = [f"churn-{i:03d}" for i in range(100)]
        for name in names[:30]:
            await kube.create(SERVICES, namespace, load_balancer(name))
        processes[leader].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        for name in names[30:]:
            await kube.create(SERVICES, namespace, load_balancer(name))

        async def standby_leads() -> bool:
            return (await holder(kube, namespace, lease)).startswith(standby + "_")

        await eventually(standby_leads, within=20, what="standby leads")
        failover = time.monotonic() - killed
        assert failover <= FAST["lease_duration"] + FAST["retry_period"] + 1.0

        async def all_assigned() -> list[str] | None:
            items, _ = await kube.list(SERVICES, namespace)
            shown = [shown_ip(item) for item in items]
            return [ip for ip in shown if ip] if len(items) == 100 and all(shown) else None

        addresses = await eventually(all_assigned, within=60, what="all 100 assigned")
        assert len(set(addresses)) == 100
        vips, _ = await kube.list(VIPS, namespace)
        assert sorted(v["spec"]["ipaddress"] for v in vips) == sorted(addresses)
    finally:
        for process in processes.values():
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            await asyncio.wait_for(process.wait(), timeout=30)


async def test_a_candidate_judges_expiry_by_the_leases_own_duration(
    kube: KubeClient, namespace: str
) -> None:
    """client-go semantics on an injected clock: a record is expired once unchanged for *its*
    leaseDurationSeconds since this candidate observed it, whatever the candidate's own flag."""
    now = [1000.0]
    elector = LeaderElector(kube, config(namespace, "theirs", "candidate"), clock=lambda: now[0])
    spec = {"holderIdentity": "other", "leaseDurationSeconds": 60,
            "renewTime": "2024-01-01T00:00:00.000000Z"}  # fmt: skip
    await kube.create(LEASES, namespace, {"metadata": {"name": "theirs"}, "spec": spec})

    assert not await elector.try_acquire_or_renew()
    now[0] += 10  # past our own 3 s, well inside the holder's 60 s
    assert not await elector.try_acquire_or_renew()
    assert await holder(kube, namespace, "theirs") == "other"
    now[0] += 51
    assert await elector.try_acquire_or_renew()
    assert await holder(kube, namespace, "theirs") == "candidate"

    short = {"holderIdentity": "third", "leaseDurationSeconds": 1}
    await kube.patch(LEASES, namespace, "theirs", {"spec": short})
    assert not await elector.try_acquire_or_renew()  # a new record: observed now
    now[0] += 1.5  # inside our own 3 s, past the holder's 1 s
    assert await elector.try_acquire_or_renew()
    assert await holder(kube, namespace, "theirs") == "candidate"


async def test_a_renewal_that_hangs_is_cancelled_at_the_renew_deadline(
    kube: KubeClient, namespace: str, control_plane: LocalControlPlane
) -> None:
    """A frozen apiserver makes GET and PATCH hang: the attempt is cut at the renew deadline,
    so leading stops within renew_deadline of the last renewal, not a request timeout later."""
    lost_at: list[float] = []
    elector = LeaderElector(kube, config(namespace, "hang", "solo"))

    async def lead() -> None:
        await asyncio.Event().wait()

    task = asyncio.create_task(elector.run(lead, on_lost=lambda: lost_at.append(time.monotonic())))
    try:
        await eventually(lambda: elector.is_leader, what="leads")
        with control_plane.paused_apiserver():
            paused = time.monotonic()  # the last renewal started before this
            await eventually(lambda: lost_at, within=10, what="gave up leading")
        assert lost_at[0] - paused < FAST["renew_deadline"] + 0.3
        assert not elector.is_leader
    finally:
        await cancel_and_wait(task)
