"""The one module that speaks Prometheus: a registry per running lbctl.

Adapters keep plain counters (the allocator its stats, the kube client its request results,
informers their restarts); a collector reads them at scrape time, so nothing below this module
imports prometheus_client or touches global state.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from lbctl.app import Runtime
    from lbctl.kube.workqueue import QueueObserver, WorkQueue

QUEUE = "lbctl"
ADC_QUEUE = "lbctl-adc"


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
        yield from self._queue()
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
        depth = GaugeMetricFamily("workqueue_depth", "Keys waiting.", labels=["name"])
        adds = CounterMetricFamily("workqueue_adds", "Keys added.", labels=["name"])
        retries = CounterMetricFamily("workqueue_retries", "Rate-limited re-adds.", labels=["name"])
        for name, queue in queues(self._runtime):
            depth.add_metric([name], len(queue))
            adds.add_metric([name], queue.adds)
            retries.add_metric([name], queue.retries)
        yield depth
        yield adds
        yield retries


def queues(runtime: Runtime) -> list[tuple[str, WorkQueue]]:
    """The work queues by their metric name: IPAM's (``lbctl``) and the NetScaler's."""
    found = [(QUEUE, runtime.queue)]
    if runtime.adc_controller is not None and runtime.adc_queue is not None:
        found.append((ADC_QUEUE, runtime.adc_queue))
    return found


def registry_for(runtime: Runtime) -> CollectorRegistry:
    """A fresh registry wired to ``runtime`` (also hooks the queue and reconcile timings)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(RuntimeCollector(runtime))
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
    return registry
