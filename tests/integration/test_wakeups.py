"""A Service that waits for an address is woken by a release that comes while its reconcile
is still posting the Event that says why it waits."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from lbctl import app
from lbctl.config import Settings
from lbctl.devenv.controlplane import LocalControlPlane
from lbctl.ipam.ranges import parse_vip_range
from lbctl.kube.client import SERVICES, VIP_ADDRESSES, VIPS, KubeClient, api_client_from
from lbctl.kube.errors import NotFound
from tests.integration.conftest import StartLbctl, load_balancer, wait_for_ip
from tests.integration.fault_proxy import FaultProxy
from tests.waiting import eventually

ADDRESS = "10.231.0.1"


class EventGate(FaultProxy):
    """Holds the reply to every Event write about ``name`` (applied upstream first) until
    ``gate`` is set; everything else passes."""

    def __init__(self, proxy: FaultProxy, name: str) -> None:
        super().__init__(proxy.upstream, proxy.ca_file, proxy.token, proxy.workdir, seed=0)
        self.name = name
        self.gate = asyncio.Event()
        self.held = 0

    async def _write(self, request: web.Request, fate: str, wait: float) -> web.StreamResponse:
        body = await request.read()
        about = f'"name":"{self.name}"'.encode() in body.replace(b" ", b"")
        if "/events" not in request.path or not (about or f"/{self.name}." in request.path):
            return await super()._write(request, fate, wait)
        self.held += 1
        try:
            await self.gate.wait()
        finally:
            self.held -= 1
        return await super()._write(request, fate, wait)


@contextlib.asynccontextmanager
async def restarted_behind(
    control_plane: LocalControlPlane, workdir: Path, vip_range: str, name: str
) -> AsyncIterator[tuple[EventGate, app.Runtime]]:
    """lbctl started again, talking to the apiserver through an ``EventGate`` for ``name``."""
    gate = EventGate(FaultProxy.in_front_of(control_plane.kubeconfig, workdir, seed=0), name)
    async with gate:
        client = KubeClient(await api_client_from(str(gate.kubeconfig)))
        settings = Settings(
            pools=parse_vip_range(vip_range),
            kubeconfig=str(gate.kubeconfig),
            metrics_bind_address="0",
        )
        runtime = app.build(settings, client)
        task = asyncio.create_task(app.run_with(settings, client, runtime))
        try:
            yield gate, runtime
        finally:
            gate.gate.set()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await client.close()


async def test_a_release_during_the_waiters_event_write_wakes_it(
    kube: KubeClient,
    namespace: str,
    control_plane: LocalControlPlane,
    start_lbctl: StartLbctl,
    tmp_path: Path,
) -> None:
    """One address: ``holder`` has it and ``waiter`` waits (Pending).  lbctl restarts; its
    first reconcile of ``waiter`` posts the waiting Event (held here), and meanwhile
    ``holder`` is deleted and its address released.  ``waiter`` must get the address at once,
    not after its 60 s retry: nothing it writes brings it back (its status and Vip say
    Pending already), so only the release's wake-up can."""
    vip_range = f'["{ADDRESS}"]'
    first = await start_lbctl(vip_range)
    await kube.create(SERVICES, namespace, load_balancer("holder"))
    assert await wait_for_ip(kube, namespace, "holder") == ADDRESS
    await kube.create(SERVICES, namespace, load_balancer("waiter"))

    async def waits() -> bool:
        with contextlib.suppress(NotFound):
            vip = await kube.get(VIPS, namespace, "waiter")
            return (vip.get("status") or {}).get("state") == "Pending"
        return False

    await eventually(waits, what="waiter Pending")
    await first.stop()

    async with restarted_behind(control_plane, tmp_path, vip_range, "waiter") as (gate, runtime):
        await eventually(lambda: gate.held > 0, what="waiter's Event held")
        await kube.delete(SERVICES, namespace, "holder")

        async def released() -> bool:
            try:
                await kube.get(VIP_ADDRESSES, None, ADDRESS)
            except NotFound:
                return runtime.address_records.get(ADDRESS) is None
            return False

        await eventually(released, what=f"{ADDRESS} released")
        gate.gate.set()
        assert await wait_for_ip(kube, namespace, "waiter", within=30) == ADDRESS


async def test_a_release_during_a_second_family_waiters_event_write_wakes_it(
    kube: KubeClient,
    namespace: str,
    control_plane: LocalControlPlane,
    start_lbctl: StartLbctl,
    tmp_path: Path,
) -> None:
    """The same for a dual-stack Service that serves IPv4 while it waits for an IPv6 address
    (its Normal SingleFamily Event held while the only IPv6 address is released)."""
    vip_range = '["10.231.1.0/30", "fd00:231::1"]'
    dual: dict[str, Any] = {"ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv4", "IPv6"]}
    first = await start_lbctl(vip_range)
    await kube.create(SERVICES, namespace, load_balancer("holder", **dual))
    await eventually(lambda: ingress(kube, namespace, "holder", 2), what="holder dual-stack")
    await kube.create(SERVICES, namespace, load_balancer("waiter", **dual))
    await eventually(lambda: ingress(kube, namespace, "waiter", 1), what="waiter IPv4 only")
    await first.stop()
    six = ipaddress.ip_address("fd00:231::1")
    async with restarted_behind(control_plane, tmp_path, vip_range, "waiter") as (gate, runtime):
        await eventually(lambda: gate.held > 0, what="waiter's Event held")
        await kube.delete(SERVICES, namespace, "holder")

        async def released() -> bool:
            try:
                await kube.get(SERVICES, namespace, "holder")
            except NotFound:
                return runtime.allocator.recorded_for(six) is None
            return False

        await eventually(released, what=f"{six} released")
        gate.gate.set()
        ips = await eventually(
            lambda: ingress(kube, namespace, "waiter", 2), within=30, what="waiter dual-stack"
        )
        assert ips[1] == str(six)


async def ingress(kube: KubeClient, namespace: str, name: str, count: int) -> list[str] | None:
    service = await kube.get(SERVICES, namespace, name)
    entries = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    ips = [str(e["ip"]) for e in entries]
    return ips if len(ips) == count else None
