"""Whole lbctl instances with leader election on the real apiserver: fencing and recovery.

A leader stops writing before anyone else may lead (shutdown drains while the lease is still
renewed, and releases it only afterwards); a replica that loses its lease and wins it back
reconciles again; apiserver faults at the start of a term, or a dying informer, do not end the
process.  Faults the real server cannot produce on demand (one failed LIST, a write held open,
a watch that breaks with a bug) go through ``Faulty``, a thin seam over the real client.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from lbctl import app
from lbctl.config import Settings
from lbctl.devenv.controlplane import LocalControlPlane
from lbctl.ipam.ranges import parse_vip_range
from lbctl.kube.client import JSON, SERVICES, VIPS, KubeClient, Resource, api_client_from
from lbctl.kube.errors import KubeUnavailable
from lbctl.kube.leader import LEASES, LeaderElectionConfig
from tests.integration.conftest import RunningLbctl, load_balancer, wait_for_ip
from tests.waiting import eventually

TIMING = {"lease_duration": 2.0, "renew_deadline": 1.5, "retry_period": 0.3}


class Faulty(KubeClient):
    """The real client, with one-off faults and a log of the writes that matter here."""

    def __init__(self, api: Any) -> None:
        super().__init__(api)
        self.failing_vip_lists = 0
        self.vip_lists = 0
        self.broken_service_watches = 0
        self.hold_vip_creates: asyncio.Event | None = None
        self.events: list[str] = []

    async def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        page_size: int = 500,
    ) -> tuple[list[JSON], str]:
        if resource == VIPS:  # the new leader's read (the informer's goes through list_each)
            self.vip_lists += 1
            if self.failing_vip_lists:
                self.failing_vip_lists -= 1
                raise KubeUnavailable("injected: 503 Service Unavailable")
        return await super().list(resource, namespace, page_size)

    async def watch(
        self,
        resource: Resource,
        *,
        namespace: str | None,
        resource_version: str,
        timeout_seconds: int,
        read_timeout: float,
    ) -> AsyncIterator[JSON]:
        if resource == SERVICES and self.broken_service_watches:
            self.broken_service_watches -= 1
            raise RuntimeError("injected: a bug while reading the watch")
        stream = super().watch(
            resource,
            namespace=namespace,
            resource_version=resource_version,
            timeout_seconds=timeout_seconds,
            read_timeout=read_timeout,
        )
        async for event in stream:
            yield event

    async def create(
        self, resource: Resource, namespace: str | None, body: JSON, *, timeout: float | None = None
    ) -> JSON:
        if resource != VIPS or self.hold_vip_creates is None:
            return await super().create(resource, namespace, body, timeout=timeout)
        self.events.append("write started")
        try:
            await self.hold_vip_creates.wait()
            return await super().create(resource, namespace, body, timeout=timeout)
        finally:
            self.events.append("write ended")

    async def patch(
        self, resource: Resource, namespace: str | None, name: str, patch: Any, **kw: Any
    ) -> JSON:
        result = await super().patch(resource, namespace, name, patch, **kw)
        if resource == LEASES:
            released = (patch.get("spec") or {}).get("holderIdentity") == ""
            self.events.append("lease released" if released else "lease renewed")
        return result


Start = Callable[..., Awaitable[tuple[RunningLbctl, Faulty]]]


@pytest.fixture
def lease() -> str:
    return f"lbctl-{secrets.token_hex(3)}"


@pytest.fixture
async def lbctls(
    control_plane: LocalControlPlane, namespace: str, lease: str
) -> AsyncIterator[Start]:
    """Start leader-elected lbctl instances (all on ``lease``) on ``Faulty`` clients."""
    running: list[RunningLbctl] = []

    async def start(identity: str, **faults: int) -> tuple[RunningLbctl, Faulty]:
        client = Faulty(await api_client_from(str(control_plane.kubeconfig)))
        for name, value in faults.items():
            setattr(client, name, value)
        election = LeaderElectionConfig(namespace, lease, identity, **TIMING)
        settings = Settings(
            pools=parse_vip_range('["10.78.0.0/24"]'),
            kubeconfig=str(control_plane.kubeconfig),
            metrics_bind_address="0",
            namespace=namespace,
            leader_election=election,
        )
        runtime = app.build(settings, client)
        task = asyncio.create_task(app.run_with(settings, client, runtime))
        handle = RunningLbctl(runtime, task, client)
        running.append(handle)
        await eventually(lambda: runtime.started.is_set() or task.done(), what="lbctl start")
        return handle, client

    yield start
    for handle in running:
        await handle.stop()


async def give_lease(kube: KubeClient, namespace: str, lease: str, to: str, seconds: int) -> None:
    """Overwrite the Lease's holder, as a faster candidate (or an operator) would."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    spec = {"holderIdentity": to, "leaseDurationSeconds": seconds, "renewTime": now}
    await kube.patch(LEASES, namespace, lease, {"spec": spec})


def leading(handle: RunningLbctl) -> bool:
    return handle.runtime.leading.is_set()


async def test_a_replica_that_wins_its_lease_back_reconciles_again(
    kube: KubeClient, namespace: str, lease: str, lbctls: Start
) -> None:
    """a leads, loses to b, nobody leads for a while, a wins again: a Service created while
    nobody led gets its VIP from a (its queue is reopened and every key re-enqueued)."""
    a, a_client = await lbctls("lbctl-a")
    await eventually(lambda: leading(a), what="a leads")
    b, _ = await lbctls("lbctl-b")
    await kube.create(SERVICES, namespace, load_balancer("first"))
    await wait_for_ip(kube, namespace, "first")

    await give_lease(kube, namespace, lease, "lbctl-b", 2)
    await eventually(lambda: leading(b) and not leading(a), what="b leads, a stopped")
    await kube.create(SERVICES, namespace, load_balancer("second"))
    await wait_for_ip(kube, namespace, "second")

    await give_lease(kube, namespace, lease, "intruder", 3600)
    await eventually(lambda: not leading(b) and not leading(a), what="nobody leads")
    await kube.create(SERVICES, namespace, load_balancer("third"))
    await eventually(lambda: a.runtime.services.get(f"{namespace}/third"), what="a sees third")
    creates = a_client.calls[("vips", "create")]

    await give_lease(kube, namespace, lease, "lbctl-a", 2)
    third = await wait_for_ip(kube, namespace, "third")
    assert leading(a)
    assert not leading(b)
    assert a_client.calls[("vips", "create")] == creates + 1
    first = await wait_for_ip(kube, namespace, "first")
    second = await wait_for_ip(kube, namespace, "second")
    assert len({first, second, third}) == 3


async def test_a_failed_vip_list_at_the_start_of_a_term_is_retried(
    kube: KubeClient, namespace: str, lbctls: Start
) -> None:
    """A 503 on the new leader's quorum LIST of Vips: retried with backoff, the process leads."""
    solo, client = await lbctls("solo", failing_vip_lists=1)
    await eventually(lambda: leading(solo) or solo.task.done(), what="leads (or ends)")
    assert not solo.task.done(), "a transient apiserver error ended lbctl"
    assert client.vip_lists == 2
    await kube.create(SERVICES, namespace, load_balancer("after"))
    await wait_for_ip(kube, namespace, "after")


async def test_an_informer_that_dies_is_restarted(
    kube: KubeClient, namespace: str, lbctls: Start
) -> None:
    """The Service watch breaks with an unexpected exception: the informer is restarted and a
    Service created afterwards is still seen and served."""
    solo, client = await lbctls("solo", broken_service_watches=1)
    await eventually(lambda: leading(solo), what="leads")
    assert client.broken_service_watches == 0
    await kube.create(SERVICES, namespace, load_balancer("later"))
    await wait_for_ip(kube, namespace, "later")


async def test_shutdown_releases_the_lease_only_after_in_flight_writes_stopped(
    kube: KubeClient, namespace: str, lbctls: Start
) -> None:
    """SIGTERM (cancel) while a reconcile is inside a write: the lease keeps being renewed
    while the write drains, and is released only after it has ended."""
    solo, client = await lbctls("solo")
    client.hold_vip_creates = asyncio.Event()
    await eventually(lambda: leading(solo), what="leads")
    await kube.create(SERVICES, namespace, load_balancer("held"))
    await eventually(lambda: "write started" in client.events, what="a write in flight")

    solo.task.cancel()
    mark = len(client.events)
    await eventually(
        lambda: client.events[mark:].count("lease renewed") >= 3,
        within=5,
        what="lease renewed while the write drains",
    )
    assert "lease released" not in client.events
    client.hold_vip_creates.set()
    with contextlib.suppress(asyncio.CancelledError):
        await solo.task
    order = [e for e in client.events if e in ("write ended", "lease released")]
    assert order == ["write ended", "lease released"]


async def test_a_lease_lost_while_shutting_down_aborts_the_write_at_once(
    kube: KubeClient, namespace: str, lease: str, lbctls: Start
) -> None:
    """Draining on shutdown, the lease goes to another: the held write is cancelled at once
    (within the renew deadline), not finished after the new leader started."""
    solo, client = await lbctls("solo")
    client.hold_vip_creates = asyncio.Event()
    await eventually(lambda: leading(solo), what="leads")
    await kube.create(SERVICES, namespace, load_balancer("held"))
    await eventually(lambda: "write started" in client.events, what="a write in flight")

    solo.task.cancel()
    await give_lease(kube, namespace, lease, "other", 60)
    await eventually(lambda: "write ended" in client.events, within=5, what="write cancelled")
    with contextlib.suppress(asyncio.CancelledError):
        await solo.task
    assert not client.hold_vip_creates.is_set()
    assert "lease released" not in client.events, "the lease was not ours to release"
