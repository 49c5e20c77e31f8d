"""Fixtures on a real kube-apiserver + etcd (built from Go modules on first use).

The control plane is shared by the whole session.  A bare apiserver never finishes deleting a
namespace, so every test gets a fresh one and empties it afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from lbctl import app
from lbctl.adc.plan import Node
from lbctl.config import AdcSettings, Settings
from lbctl.devenv.build import ensure_binaries
from lbctl.devenv.cluster import install_crds, load_balancer_service
from lbctl.devenv.controlplane import LocalControlPlane
from lbctl.ipam.ranges import parse_vip_range
from lbctl.kube.client import (
    JSON,
    NAMESPACES,
    NODES,
    SERVICES,
    VIP_ADDRESSES,
    VIP_POOLS,
    VIPS,
    KubeClient,
    api_client_from,
)
from lbctl.kube.errors import NotFound
from lbctl.nitro.simulator import RequestRecord, Simulator
from tests.integration.chaos_harness import PASSWORD, SEED, make_nodes
from tests.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def control_plane() -> Iterator[LocalControlPlane]:
    """etcd + kube-apiserver for the session, with the Vip CRD installed.

    If the binaries cannot be built or the servers do not start, every integration test
    errors with the reason; nothing is skipped.
    """
    binaries = ensure_binaries()
    with LocalControlPlane(binaries) as plane:

        async def prepare() -> None:
            client = KubeClient(await api_client_from(str(plane.kubeconfig)))
            try:
                await install_crds(client)
            finally:
                await client.close()

        asyncio.run(prepare())
        yield plane


@pytest.fixture
async def kube(control_plane: LocalControlPlane) -> AsyncIterator[KubeClient]:
    client = KubeClient(await api_client_from(str(control_plane.kubeconfig)))
    yield client
    await client.close()


async def empty_namespace(client: KubeClient, namespace: str) -> None:
    """Delete every Service and Vip in ``namespace`` and the address records naming them,
    stripping finalizers no one will remove."""
    for resource in (SERVICES, VIPS):
        items, _ = await client.list(resource, namespace)
        for item in items:
            name = item["metadata"]["name"]
            with contextlib.suppress(NotFound):
                if item["metadata"].get("finalizers"):
                    await client.patch(
                        resource, namespace, name, {"metadata": {"finalizers": None}}
                    )
                await client.delete(resource, namespace, name)
    records, _ = await client.list(VIP_ADDRESSES)
    for record in records:
        holders = record.get("spec", {}).get("holders") or []
        if any(h.get("namespace") == namespace for h in holders):
            name = record["metadata"]["name"]
            with contextlib.suppress(NotFound):
                await client.patch(VIP_ADDRESSES, None, name, {"metadata": {"finalizers": None}})
                await client.delete(VIP_ADDRESSES, None, name)


@pytest.fixture
async def namespace(kube: KubeClient, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    slug = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40].strip("-")
    name = f"{slug}-{secrets.token_hex(3)}"
    await kube.create(NAMESPACES, None, {"metadata": {"name": name}})
    yield name
    await empty_namespace(kube, name)
    with contextlib.suppress(NotFound):
        await kube.delete(NAMESPACES, None, name)


@pytest.fixture
async def second_namespace(kube: KubeClient) -> AsyncIterator[str]:
    """Another namespace, for instances scoped by namespace."""
    name = f"second-{secrets.token_hex(3)}"
    await kube.create(NAMESPACES, None, {"metadata": {"name": name}})
    yield name
    await empty_namespace(kube, name)
    with contextlib.suppress(NotFound):
        await kube.delete(NAMESPACES, None, name)


CreatePool = Callable[..., Awaitable[JSON]]


@pytest.fixture
async def vip_pools(kube: KubeClient) -> AsyncIterator[CreatePool]:
    """Create cluster-scoped VipPools (``name``, ``addresses``, other spec fields as keyword
    arguments); every one is deleted at the end of the test."""
    created: list[str] = []

    async def create(name: str, addresses: list[str], **spec: object) -> JSON:
        body = {
            "apiVersion": "ipam.citrix.com/v1",
            "kind": "VipPool",
            "metadata": {"name": name},
            "spec": {"addresses": addresses, **spec},
        }
        created.append(name)
        return await kube.create(VIP_POOLS, None, body)

    yield create
    for name in created:
        with contextlib.suppress(NotFound):
            await kube.delete(VIP_POOLS, None, name)


@dataclass
class RunningLbctl:
    runtime: app.Runtime
    task: asyncio.Task[None]
    client: KubeClient

    async def stop(self) -> None:
        if not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.client.close()


StartLbctl = Callable[..., Awaitable[RunningLbctl]]


@pytest.fixture
async def start_lbctl(control_plane: LocalControlPlane) -> AsyncIterator[StartLbctl]:
    """Start lbctl in this event loop, on its own client; stopped at the end of the test."""
    running: list[RunningLbctl] = []

    async def start(vip_range: str = '["10.77.0.0/24"]', **overrides: object) -> RunningLbctl:
        client = KubeClient(await api_client_from(str(control_plane.kubeconfig)))
        settings = Settings(
            pools=parse_vip_range(vip_range),
            kubeconfig=str(control_plane.kubeconfig),
            metrics_bind_address="0",
            **overrides,  # type: ignore[arg-type]
        )
        runtime = app.build(settings, client)
        task = asyncio.create_task(app.run_with(settings, client, runtime))
        handle = RunningLbctl(runtime, task, client)
        running.append(handle)
        await eventually(lambda: runtime.started.is_set() or task.done(), what="lbctl start")
        if task.done():
            task.result()
        return handle

    yield start
    for handle in running:
        await handle.stop()


async def settled(running: RunningLbctl, change: Callable[[], Awaitable[object]]) -> None:
    """Make ``change`` and wait until lbctl has reconciled it and has nothing left to do."""
    queue, controller = running.runtime.queue, running.runtime.controller
    before = controller.reconciles
    await change()
    await eventually(lambda: controller.reconciles > before, what="reconciled")
    await eventually(lambda: len(queue) == 0 and queue.processing == 0, what="queue idle")


load_balancer = load_balancer_service


def shared(name: str, key: str, *ports: tuple[str, int]) -> JSON:
    """A LoadBalancer Service that may share its address under ``key`` (``ports``: (protocol,
    port) pairs)."""
    service = load_balancer(name)
    service["metadata"]["annotations"] = {"lbctl.io/allow-shared-ip": key}
    service["spec"]["ports"] = [
        {"name": f"p{port}-{proto.lower()}", "protocol": proto, "port": port, "targetPort": port}
        for proto, port in ports
    ]
    return service


def shown_ip(service: JSON) -> str | None:
    """The VIP a Service shows, if annotation and status agree on one; else None."""
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    annotation = (service["metadata"].get("annotations") or {}).get("com.citrix.vip")
    if len(ingress) == 1 and ingress[0].get("ip") == annotation:
        return str(annotation)
    return None


async def wait_for_ip(kube: KubeClient, namespace: str, name: str, within: float = 20) -> str:
    async def probe() -> str | None:
        return shown_ip(await kube.get(SERVICES, namespace, name))

    return await eventually(probe, within=within, what=f"VIP on {namespace}/{name}")


SIM_PASSWORD = "sim-Pa55-word"


@dataclass
class RunningSimulator:
    sim: Simulator
    url: str

    def settings(self, **overrides: Any) -> AdcSettings:
        values: dict[str, Any] = {"prefix": "lbctl", "resync_period": 300.0, **overrides}
        return AdcSettings(url=self.url, username="nsroot", password=SIM_PASSWORD, **values)

    def writes(self) -> list[RequestRecord]:
        return [
            r for r in self.sim.requests
            if r.method != "GET" and r.resource not in ("login", "logout")
        ]  # fmt: skip

    def names(self, resource: str) -> set[str]:
        field = {"servicegroup": "servicegroupname", "lbmonitor": "monitorname"}.get(
            resource, "name"
        )
        return {str(o[field]) for o in self.sim.objects(resource)}


@pytest.fixture
async def simulator() -> AsyncIterator[RunningSimulator]:
    sim = Simulator(username="nsroot", password=SIM_PASSWORD)
    async with sim.serve() as url:
        yield RunningSimulator(sim, url)


async def make_node(
    kube: KubeClient, name: str, ip: str, *, ready: bool = True, excluded: bool = False
) -> None:
    labels = {"node.kubernetes.io/exclude-from-external-load-balancers": ""} if excluded else {}
    await kube.create(NODES, None, {"metadata": {"name": name, "labels": labels}})
    await set_node(kube, name, ip, ready=ready)


async def set_node(kube: KubeClient, name: str, ip: str, *, ready: bool) -> None:
    status = {
        "addresses": [{"type": "InternalIP", "address": ip}],
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    await kube.patch(NODES, None, name, {"status": status}, subresource="status")


@pytest.fixture
async def nodes(kube: KubeClient) -> AsyncIterator[Callable[..., Awaitable[None]]]:
    """Create Nodes for one test (cluster-wide objects: removed afterwards)."""
    made: list[str] = []

    async def create(name: str, ip: str, **kw: bool) -> None:
        await make_node(kube, name, ip, **kw)
        made.append(name)

    yield create
    for name in made:
        with contextlib.suppress(NotFound):
            await kube.delete(NODES, None, name)


@pytest.fixture
async def sim() -> AsyncIterator[tuple[Simulator, str]]:
    """The chaos runs' NITRO simulator, seeded like the run."""
    simulator = Simulator(username="nsroot", password=PASSWORD, seed=SEED)
    async with simulator.serve() as url:
        yield simulator, url


@pytest.fixture
async def chaos_nodes(kube: KubeClient, namespace: str) -> AsyncIterator[list[Node]]:
    """Three Ready Nodes for one chaos run (cluster-wide objects: removed afterwards)."""
    made = await make_nodes(kube, namespace)
    yield made
    for node in made:
        with contextlib.suppress(NotFound):
            await kube.delete(NODES, None, node.name)
