"""The one module that speaks Prometheus: a registry per running lbctl.

Adapters keep plain counters (the allocator its stats, the kube client its request results,
informers their restarts); a collector reads them at scrape time, so nothing below this module
imports prometheus_client or touches global state.  No ``_created`` series is exported: they
double the series of every counter and histogram and no alert or dashboard reads them;
they are dropped from this registry only (``disable_created_metrics`` would drop them from
every registry in the process).
"""

from __future__ import annotations

import platform
from collections import Counter
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lbctl.model import ServiceView

if TYPE_CHECKING:
    from lbctl.app import Runtime
    from lbctl.kube.workqueue import QueueObserver, WorkQueue
    from lbctl.nitro.client import NitroClient
    from lbctl.reconcile.adc_health import AdcHealth

QUEUE = "lbctl"
ADC_QUEUE = "lbctl-adc"

NO_ADDRESS_REASONS = (
    "PoolExhausted", "NoEligiblePool", "UnknownPool", "PoolNotAdmitted", "PoolDisabled",
    "AddressInUse", "AddressNotInPool",
)  # fmt: skip
"""Pending reasons that mean "no address for it now" (not a request to correct): always
exported, 0 when none waits, so alerts and dashboards see the series."""
PENDING_REASONS = (*NO_ADDRESS_REASONS, "PortConflict", "InvalidRequest")
"""Every reason lbctl writes on a Pending Vip; anything else (a hand edit) counts as
``Other``, so no label value comes from user input."""


def _lbctl_version() -> str:
    try:
        return version("lbctl")
    except PackageNotFoundError:
        return "unknown"


class QueueTimings:
    """client-go's workqueue histograms, fed by the queue's observer hook."""

    def __init__(self, registry: CollectorRegistry) -> None:
        buckets = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300)
        self._queued = Histogram(
            "workqueue_queue_duration_seconds",
            "How long a key waits in the queue before it is processed.",
            ["name"], buckets=buckets, registry=registry,
        )  # fmt: skip
        self._worked = Histogram(
            "workqueue_work_duration_seconds",
            "How long processing a key takes.",
            ["name"], buckets=buckets, registry=registry,
        )  # fmt: skip

    def of(self, name: str) -> QueueObserver:
        """The observer of the queue called ``name``."""
        return _QueueTiming(self._queued.labels(name), self._worked.labels(name))


class _QueueTiming:
    def __init__(self, queued: Histogram, worked: Histogram) -> None:
        self._queued = queued
        self._worked = worked

    def queued_for(self, seconds: float) -> None:
        self._queued.observe(seconds)

    def worked_for(self, seconds: float) -> None:
        self._worked.observe(seconds)


class RuntimeCollector(Collector):
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def collect(self) -> Iterator[Metric]:
        rt = self._runtime
        info = GaugeMetricFamily("lbctl_build_info", "lbctl version.", labels=["version", "python"])
        info.add_metric([_lbctl_version(), platform.python_version()], 1)
        yield info
        leader = GaugeMetricFamily("lbctl_leader", "1 while this process reconciles (leads).")
        leader.add_metric([], 1 if rt.leading.is_set() else 0)
        yield leader
        yield from self._ipam()
        yield from self._pending()
        yield from self._queue()
        if rt.nitro is not None:
            yield from netscaler_metrics(rt.nitro, rt.health)
        reconciles = CounterMetricFamily(
            "lbctl_reconciles",
            "Reconciles by controller and result.",
            labels=["controller", "result"],
        )
        for controller in rt.controllers:
            for (kind, outcome), count in sorted(controller.outcomes.items()):
                reconciles.add_metric([kind, outcome], count)
        yield reconciles
        requests = CounterMetricFamily(
            "lbctl_apiserver_requests", "apiserver requests by verb and status code.",
            labels=["verb", "code"],
        )  # fmt: skip
        for (verb, code), count in sorted(rt.client.results.items()):
            requests.add_metric([verb, code], count)
        yield requests
        calls = CounterMetricFamily(
            "lbctl_apiserver_calls", "apiserver requests by resource and verb.",
            labels=["resource", "verb"],
        )  # fmt: skip
        for (resource, verb), count in sorted(rt.client.calls.items()):
            calls.add_metric([resource, verb], count)
        yield calls
        restarts = CounterMetricFamily(
            "lbctl_watch_restarts", "Watches started again, per informer.", labels=["resource"]
        )
        relists = CounterMetricFamily(
            "lbctl_watch_relists",
            "Relists after an expired watch, per informer.",
            labels=["resource"],
        )
        for informer in rt.informers:
            restarts.add_metric([informer.resource.plural], informer.watch_restarts)
            relists.add_metric([informer.resource.plural], informer.relists)
        yield restarts
        yield relists

    def _ipam(self) -> Iterator[Metric]:
        """Named as MetalLB's ``metallb_allocator_addresses_{in_use_,}total`` so alerts
        carry over; label values are pool names from VIP_RANGE and VipPool objects only
        (``pool=""``: addresses in use outside every pool)."""
        labels = ["pool", "family"]
        total = GaugeMetricFamily(
            "lbctl_ipam_addresses_total", "Addresses a pool can hand out.", labels=labels
        )
        in_use = GaugeMetricFamily(
            "lbctl_ipam_addresses_in_use_total",
            "Addresses in use, by pool (empty: outside every pool) and family.",
            labels=labels,
        )
        for stats in self._runtime.allocator.stats():
            family = f"ipv{stats.version}"
            total.add_metric([stats.name, family], float(stats.total))
            in_use.add_metric([stats.name, family], float(stats.in_use))
        for ip_version, count in self._runtime.allocator.in_use_outside().items():
            in_use.add_metric(["", f"ipv{ip_version}"], float(count))
        yield total
        yield in_use
        stale = GaugeMetricFamily(
            "lbctl_vip_range_file_stale",
            "1 while the VIP_RANGE file holds a value lbctl refuses (the pools before it stay).",
        )
        stale.add_metric([], float(self._runtime.pools.vip_range_error is not None))
        yield stale
        failures = CounterMetricFamily(
            "lbctl_ipam_allocation_failures",
            "Allocation attempts that found no address, by reason (the Vip condition reason).",
            labels=["reason"],
        )
        for reason, count in sorted(self._runtime.service_reconciler.allocation_failures.items()):
            failures.add_metric([reason], count)
        yield failures

    def _queue(self) -> Iterator[Metric]:
        yield from queue_metrics(queues(self._runtime))

    def _pending(self) -> Iterator[Metric]:
        """Services of this instance whose Vip says Pending, by the Vip's condition reason
        (read from the informers' caches, so a standby reports the same as the leader)."""
        rt = self._runtime
        counts: Counter[str] = Counter(dict.fromkeys(NO_ADDRESS_REASONS, 0))
        for key, reason in list(rt.tracker.pending.items()):
            service = rt.services.get(key)
            if service is None or not rt.service_reconciler.handles(ServiceView.from_raw(service)):
                continue
            counts[reason if reason in PENDING_REASONS else "Other"] += 1
        pending = GaugeMetricFamily(
            "lbctl_services_pending",
            "LoadBalancer Services without an address, by their Vip's Pending reason.",
            labels=["reason"],
        )
        for reason, count in sorted(counts.items()):
            pending.add_metric([reason], count)
        yield pending


def queue_metrics(named: list[tuple[str, WorkQueue]]) -> Iterator[Metric]:
    """client-go's workqueue gauges and counters for each ``(name, queue)``."""
    depth = GaugeMetricFamily("workqueue_depth", "Keys waiting.", labels=["name"])
    adds = CounterMetricFamily("workqueue_adds", "Keys added.", labels=["name"])
    retries = CounterMetricFamily("workqueue_retries", "Rate-limited re-adds.", labels=["name"])
    unfinished = GaugeMetricFamily(
        "workqueue_unfinished_work_seconds",
        "Seconds of work in progress not yet observed by work_duration (stuck workers).",
        labels=["name"],
    )
    longest = GaugeMetricFamily(
        "workqueue_longest_running_processor_seconds",
        "Seconds the longest-running key of the queue has been worked on.",
        labels=["name"],
    )
    for name, queue in named:
        depth.add_metric([name], len(queue))
        adds.add_metric([name], queue.adds)
        retries.add_metric([name], queue.retries)
        running = queue.running_for()
        unfinished.add_metric([name], sum(running))
        longest.add_metric([name], max(running, default=0.0))
    yield from (depth, adds, retries, unfinished, longest)


def netscaler_metrics(nitro: NitroClient, health: AdcHealth | None = None) -> Iterator[Metric]:
    """``lbctl_netscaler_up``: 0 while the circuit breaker is open (the NetScaler gave no
    answer to several requests in a row, and no probe has been answered since); with
    ``health``, lbctl's lb vservers by the state and members the last health pass read."""
    up = GaugeMetricFamily(
        "lbctl_netscaler_up",
        "1 while the NetScaler answers this process's NITRO requests, 0 while it does not.",
    )
    up.add_metric([], 0.0 if nitro.breaker.is_open else 1.0)
    yield up
    if health is None:
        return
    states: Counter[str] = Counter({"UP": 0})
    members: Counter[str] = Counter({"up": 0, "down": 0})
    for service in health.by_service.values():
        for vserver in service.vservers:
            states[vserver.state] += 1
            members["up"] += vserver.up
            members["down"] += vserver.total - vserver.up
    vservers = GaugeMetricFamily(
        "lbctl_netscaler_vservers",
        "lbctl's lb vservers by the state the NetScaler last reported (UP, DOWN, OUT OF "
        "SERVICE...); the leader's health pass reads them.",
        labels=["state"],
    )
    for state, count in sorted(states.items()):
        vservers.add_metric([state], count)
    yield vservers
    bound = GaugeMetricFamily(
        "lbctl_netscaler_vserver_members",
        "Members (nodes behind lbctl's lb vservers) the NetScaler sees up or not up.",
        labels=["state"],
    )
    for state, count in sorted(members.items()):
        bound.add_metric([state], count)
    yield bound


def queues(runtime: Runtime) -> list[tuple[str, WorkQueue]]:
    """The work queues by their metric name: IPAM's (``lbctl``) and the NetScaler's."""
    found = [(QUEUE, runtime.queue)]
    if runtime.adc_controller is not None and runtime.adc_queue is not None:
        found.append((ADC_QUEUE, runtime.adc_queue))
    return found


class WithoutCreated(Collector):
    """Another registry's metrics without their ``_created`` samples."""

    def __init__(self, inner: CollectorRegistry) -> None:
        self._inner = inner

    def collect(self) -> Iterator[Metric]:
        for metric in self._inner.collect():  # built afresh on every collect: ours to edit
            metric.samples = [s for s in metric.samples if not s.name.endswith("_created")]
            yield metric


def registry_for(runtime: Runtime) -> CollectorRegistry:
    """A fresh registry wired to ``runtime`` (also hooks the queue and reconcile timings):
    lbctl's metrics, the ``process_*`` metrics of this process, no ``_created`` series."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(RuntimeCollector(runtime))
    ProcessCollector(registry=registry)
    instruments = CollectorRegistry(auto_describe=True)
    """prometheus_client's own histograms, exported through ``WithoutCreated``."""
    _instrument(runtime, instruments)
    registry.register(WithoutCreated(instruments))
    return registry


def _instrument(runtime: Runtime, registry: CollectorRegistry) -> None:
    timings = QueueTimings(registry)
    for name, queue in queues(runtime):
        queue.observer = timings.of(name)
    durations = Histogram(
        "lbctl_reconcile_duration_seconds", "Reconcile time by controller.", ["controller"],
        registry=registry,
    )  # fmt: skip
    for controller in runtime.controllers:
        controller.observe_duration = lambda kind, s: durations.labels(kind).observe(s)
    if runtime.nitro is not None:
        nitro = Histogram(
            "lbctl_nitro_request_duration_seconds",
            "NITRO requests to the NetScaler by resource, HTTP method and outcome "
            "(ok, error: a NITRO error reply, unreachable: no reply).",
            ["resource", "method", "outcome"], registry=registry,
        )  # fmt: skip
        runtime.nitro.observer = lambda res, method, outcome, s: nitro.labels(
            res, method, outcome
        ).observe(s)
