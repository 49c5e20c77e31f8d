"""Composition root: clients, informers, allocator, reconcilers, workers and the HTTP server.

Start-up order matters for safety: every informer lists once, the allocator then holds every
address recorded in a Vip or shown on a Service, and only after that do workers start, so no
new allocation can hand out an address that is already in use.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field

import structlog

from lbctl import http, metrics
from lbctl.adc.names import Owner
from lbctl.config import AdcSettings, Settings
from lbctl.ipam.allocator import Allocator
from lbctl.kube.client import (
    ENDPOINT_SLICES,
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
from lbctl.kube.events import EventRecorder
from lbctl.kube.informer import Informer, object_key
from lbctl.kube.leader import LeaderElector
from lbctl.kube.supervise import stopped, supervised
from lbctl.kube.workqueue import MonotonicClock, RateLimiter, WorkQueue
from lbctl.nitro.client import Credentials, NitroClient
from lbctl.passes import (
    drift_passes,
    health_passes,
    pool_status_passes,
    read_adc,
    save_passes,
)
from lbctl.reconcile.adc import AdcSync
from lbctl.reconcile.adc_health import AdcHealth
from lbctl.reconcile.adc_step import AdcStep
from lbctl.reconcile.adc_worker import ADC_KIND, AdcReconciler
from lbctl.reconcile.address_index import AddressTracker
from lbctl.reconcile.addresses import AddressRecords
from lbctl.reconcile.backends import Backends, node_as_planned, slice_as_planned
from lbctl.reconcile.controller import Controller
from lbctl.reconcile.pools import Pools, follow_vip_range_file
from lbctl.reconcile.poolstatus import PoolStatusWriter
from lbctl.reconcile.publish import Requeue
from lbctl.reconcile.service import ServiceReconciler
from lbctl.reconcile.vip import VipReconciler, VipTracker
from lbctl.terms import rebuild_index, release_stale_records, reserve_shown_addresses

log = structlog.get_logger(__name__)


@dataclass
class Runtime:
    """The live parts of one running lbctl, exposed for tests and the HTTP endpoints."""

    client: KubeClient
    allocator: Allocator
    services: Informer
    vips: Informer
    queue: WorkQueue
    controller: Controller
    service_reconciler: ServiceReconciler
    tracker: VipTracker
    address_records: Informer
    address_tracker: AddressTracker
    pools: Pools
    pool_objects: Informer
    namespaces: Informer
    pool_status: PoolStatusWriter
    nitro: NitroClient | None = None
    adc: AdcSync | None = None
    adc_queue: WorkQueue | None = None
    adc_controller: Controller | None = None
    """Programs the NetScaler on workers of its own (``adc_worker``)."""
    health: AdcHealth | None = None
    nodes: Informer | None = None
    slices: Informer | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)
    """Caches synced: a ready standby, or a leader about to reconcile."""
    leading: asyncio.Event = field(default_factory=asyncio.Event)
    """This process reconciles now (it leads, or leader election is off)."""

    def ready(self) -> bool:
        """Caches synced, and the NetScaler (if any) can load-balance (its LB feature on)."""
        return self.started.is_set() and (self.adc is None or self.adc.lb_disabled is None)

    @property
    def controllers(self) -> list[Controller]:
        return [c for c in (self.controller, self.adc_controller) if c is not None]

    def abort(self) -> None:
        """Leadership lost: cancel every in-flight reconcile, IPAM's and the ADC's."""
        for controller in self.controllers:
            controller.abort()

    @property
    def informers(self) -> list[Informer]:
        informers = (
            self.services, self.vips, self.address_records, self.pool_objects, self.namespaces,
            self.nodes, self.slices,
        )  # fmt: skip
        return [i for i in informers if i is not None]


ADC_BACKOFF_CAP = 30.0
"""Seconds an ADC key waits at most between retries: the breaker's longest cool-down (a
NetScaler that comes back is noticed by its probe; its Services should not wait minutes)."""


def _generation(raw: JSON) -> object:
    return raw["metadata"].get("generation")


def tls_verify(settings: AdcSettings) -> ssl.SSLContext | bool:
    """How to check the NetScaler's certificate: against ``ca_file`` (an SSL context, as
    httpx 0.28 wants it), the system CAs (True), or not at all (``insecure``: False)."""
    if settings.ca_file:
        return ssl.create_default_context(cafile=settings.ca_file)
    return not settings.insecure


def nitro_client(settings: AdcSettings) -> NitroClient:
    return NitroClient(
        settings.url,
        Credentials(settings.username, settings.password),
        verify=tls_verify(settings),
        timeout=settings.timeout,
        session_timeout=settings.session_timeout,
    )


def build(settings: Settings, client: KubeClient, nitro: NitroClient | None = None) -> Runtime:
    allocator = Allocator(settings.pools)
    services = Informer(client, SERVICES, namespace=settings.namespace)
    vips = Informer(client, VIPS, namespace=settings.namespace)
    address_records = Informer(client, VIP_ADDRESSES)
    pool_objects = Informer(client, VIP_POOLS)
    namespaces = Informer(client, NAMESPACES)

    def pools_changed() -> None:
        for key in services.cached_keys():
            enqueue_service(key)
        for key in vips.cached_keys():
            enqueue_vip(key)
        for name in pool_objects.cached_keys():
            queue.add(f"VipPool:{name}")

    pools = Pools(allocator, settings.pools, pool_objects, namespaces, pools_changed)
    pool_status = PoolStatusWriter(client, pool_objects, allocator, pools)
    queue = WorkQueue()
    clock = MonotonicClock()
    adc_queue = WorkQueue(clock, RateLimiter(clock, cap=ADC_BACKOFF_CAP))
    """The NetScaler's own queue: its keys never wait behind IPAM's, nor IPAM's behind its."""
    recorder = EventRecorder(client, instance=settings.instance)
    adc = nodes = slices = None
    if settings.adc is not None:
        nitro = nitro or nitro_client(settings.adc)
        nodes = Informer(client, NODES, trim=node_as_planned)
        slices = Informer(
            client, ENDPOINT_SLICES, namespace=settings.namespace, trim=slice_as_planned
        )

        def all_services() -> None:
            for key in services.cached_keys():
                enqueue_adc(key)

        backends = Backends(nodes, slices, all_services, lambda key: enqueue_adc(key))
        owner = Owner(settings.adc.prefix, settings.namespace, settings.load_balancer_class)
        adc = AdcSync(nitro, owner, backends.nodes, backends.endpoints)
        nitro.breaker.on_close = all_services  # back after an outage: everyone, at once
    address_tracker = AddressTracker(
        allocator, lambda key: enqueue_service(key), lambda: on_release()
    )
    addresses = AddressRecords(
        client, address_records, allocator, address_tracker, settings.load_balancer_class
    )
    service_reconciler = ServiceReconciler(
        client=client,
        services=services,
        vips=vips,
        allocator=allocator,
        recorder=recorder,
        load_balancer_class=settings.load_balancer_class,
        on_release=lambda: on_release(),
        backend=adc,
        addresses=addresses,
        pools=pools,
        on_shown=lambda key: enqueue_adc(key),
    )

    def enqueue_service(key: str) -> None:
        queue.add(f"Service:{key}")

    def enqueue_vip(key: str) -> None:
        queue.add(f"Vip:{key}")

    def enqueue_adc(key: str) -> None:
        if adc is not None:
            adc_queue.add(f"{ADC_KIND}:{key}")

    def enqueue_pool(old: JSON | None, new: JSON | None) -> None:
        """A new or changed spec; not a status write (another instance's, or this one's)."""
        if new is not None and (old is None or _generation(old) != _generation(new)):
            queue.add(f"VipPool:{new['metadata']['name']}")

    def on_release() -> None:
        for key in list(service_reconciler.waiting):
            enqueue_service(key)
        for key in list(vip_reconciler.waiting):
            enqueue_vip(key)

    tracker = VipTracker(allocator, enqueue_service, enqueue_vip, on_release)
    vip_reconciler = VipReconciler(
        client=client,
        vips=vips,
        allocator=allocator,
        recorder=recorder,
        tracker=tracker,
        addresses=addresses,
        pools=pools,
    )

    async def reconcile_vip(key: str) -> Requeue | None:
        await vip_reconciler.reconcile(key)
        return None

    def on_service(kind: str, old: JSON | None, new: JSON | None) -> None:
        obj = new if new is not None else old
        if obj is not None:
            enqueue_service(object_key(obj))
            enqueue_adc(object_key(obj))

    async def reconcile_pool(name: str) -> Requeue | None:
        await pool_status.reconcile(name)
        return None

    vips.add_handler(tracker)
    pool_objects.add_handler(pools.on_pool)
    pool_objects.add_handler(lambda _, old, new: enqueue_pool(old, new))
    namespaces.add_handler(pools.on_namespace)
    address_records.add_handler(address_tracker)
    services.add_handler(service_reconciler.shown)
    services.add_handler(on_service)
    controller = Controller(
        queue,
        {
            "Service": service_reconciler.reconcile,
            "Vip": reconcile_vip,
            "VipPool": reconcile_pool,
        },
        workers=settings.workers,
    )
    adc_controller = health = None
    if adc is not None and nitro is not None and settings.adc is not None:
        health = AdcHealth(nitro, adc, enqueue_adc)
        step = AdcStep(adc, client, recorder, health)
        adc_reconciler = AdcReconciler(services, step, allocator, service_reconciler.handles)
        adc_controller = Controller(
            adc_queue, {ADC_KIND: adc_reconciler.reconcile}, workers=settings.adc.workers,
            gives_way_to=queue,
        )  # fmt: skip
    return Runtime(
        client, allocator, services, vips, queue, controller, service_reconciler, tracker,
        address_records, address_tracker, pools, pool_objects, namespaces, pool_status,
        nitro=nitro if adc is not None else None, adc=adc, adc_queue=adc_queue,
        adc_controller=adc_controller, health=health,
        nodes=nodes, slices=slices,
    )  # fmt: skip


async def lead(runtime: Runtime, settings: Settings) -> None:
    """Reconcile until cancelled: the leader's (or the only instance's) work.

    Every term starts afresh: the queue is reopened (a lost term shut it down) before every
    key is enqueued, and the allocator re-reads the Vips from the server.
    """
    for controller in runtime.controllers:
        controller.reopen()
    if settings.leader_election is not None:
        await rebuild_index(runtime, settings.namespace)
    reserve_shown_addresses(runtime)
    await release_stale_records(runtime, settings.namespace)
    owners: set[str] = set()
    if runtime.adc is not None:
        owners = await read_adc(runtime.adc)
    for key in set(runtime.services.cached_keys()) | owners:
        runtime.controller.enqueue("Service", key)
    if runtime.adc_controller is not None:
        for key in runtime.services.cached_keys():
            runtime.adc_controller.enqueue(ADC_KIND, key)
    for key in runtime.vips.cached_keys():
        runtime.controller.enqueue("Vip", key)
    for name in runtime.pool_objects.cached_keys():
        runtime.controller.enqueue("VipPool", name)
    runtime.leading.set()
    log.info(
        "reconciling",
        services=len(runtime.services),
        vips=len(runtime.vips),
        workers=settings.workers,
    )
    background = [asyncio.create_task(pool_status_passes(runtime))]
    if runtime.adc is not None and settings.adc is not None:
        background.append(
            asyncio.create_task(drift_passes(runtime, runtime.adc, settings.adc.resync_period))
        )
        if runtime.health is not None and settings.adc.health_period > 0:
            period = settings.adc.health_period
            background.append(asyncio.create_task(health_passes(runtime.health, period)))
        if settings.adc.save_config:
            interval = settings.adc.save_interval
            background.append(asyncio.create_task(save_passes(runtime.adc, interval)))
    try:
        await asyncio.gather(*(controller.run() for controller in runtime.controllers))
    finally:
        runtime.leading.clear()
        for task in background:
            task.cancel()
        await stopped(background)  # a drift pass deletes unused ADC servers: a write


async def run_with(settings: Settings, client: KubeClient, runtime: Runtime | None = None) -> None:
    """Run until cancelled, on an existing client (tests pass their own)."""
    log.info("starting lbctl", **settings.summary())
    runtime = runtime or build(settings, client)
    runner = None
    if settings.metrics_bind_address != "0":
        registry = metrics.registry_for(runtime)
        runner = await http.serve(
            http.build_app(runtime.ready, registry), settings.metrics_bind_address
        )
    informers = [
        asyncio.create_task(supervised(f"informer {i.resource.plural}", i.run))
        for i in runtime.informers
    ]
    if settings.vip_range_file:
        path = settings.vip_range_file
        informers.append(asyncio.create_task(follow_vip_range_file(path, runtime.pools)))
    try:
        for informer in runtime.informers:
            await informer.synced.wait()
        runtime.pools.start()
        runtime.started.set()
        log.info("caches synced", services=len(runtime.services), vips=len(runtime.vips))
        election = settings.leader_election
        if election is None:
            await lead(runtime, settings)
        else:
            elector = LeaderElector(client, election)
            await elector.run(lambda: lead(runtime, settings), on_lost=runtime.abort)
    finally:
        for task in informers:
            task.cancel()
        await asyncio.gather(*informers, return_exceptions=True)
        if runner is not None:
            await runner.cleanup()
        if runtime.nitro is not None:
            await runtime.nitro.aclose()


async def run(settings: Settings) -> None:
    client = KubeClient(await api_client_from(settings.kubeconfig))
    try:
        await run_with(settings, client)
    finally:
        await client.close()
