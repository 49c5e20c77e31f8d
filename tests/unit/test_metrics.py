"""The metrics lbctl.metrics builds from plain counters: client-go's unfinished-work gauges,
the NetScaler's reachability, and no ``_created`` series."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import cast

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from lbctl.kube.workqueue import WorkQueue
from lbctl.metrics import WithoutCreated, netscaler_metrics, queue_metrics
from lbctl.nitro.breaker import CircuitBreaker
from lbctl.nitro.client import Credentials, NitroClient
from lbctl.reconcile.adc import AdcSync
from lbctl.reconcile.adc_health import AdcHealth, Health, VserverHealth
from tests.unit.nitro_wire import SECRET, URL
from tests.unit.test_workqueue import FakeClock


class Collecting(Collector):
    def __init__(self, produce: Callable[[], Iterator[Metric]]) -> None:
        self._produce = produce

    def collect(self) -> Iterator[Metric]:
        return self._produce()


def registry_of(produce: Callable[[], Iterator[Metric]]) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(Collecting(produce))
    return registry


async def test_unfinished_work_and_longest_running_processor_follow_the_keys_in_progress() -> None:
    clock = FakeClock()
    queue = WorkQueue(clock=clock)
    registry = registry_of(lambda: queue_metrics([("lbctl", queue)]))

    def value(name: str) -> float | None:
        return registry.get_sample_value(name, {"name": "lbctl"})

    assert value("workqueue_unfinished_work_seconds") == 0
    assert value("workqueue_longest_running_processor_seconds") == 0
    queue.add("a")
    queue.add("b")
    assert await queue.get() == "a"
    clock.advance(1.0)
    assert await queue.get() == "b"
    clock.advance(3.0)
    assert value("workqueue_unfinished_work_seconds") == 4.0 + 3.0
    assert value("workqueue_longest_running_processor_seconds") == 4.0
    assert value("workqueue_depth") == 0
    queue.done("a")  # observed by work_duration from now on
    assert value("workqueue_unfinished_work_seconds") == 3.0
    assert value("workqueue_longest_running_processor_seconds") == 3.0
    queue.done("b")
    assert value("workqueue_unfinished_work_seconds") == 0
    assert value("workqueue_longest_running_processor_seconds") == 0
    assert value("workqueue_adds_total") == 2


async def test_netscaler_up_is_0_while_the_breaker_is_open_and_1_once_it_answers() -> None:
    breaker = CircuitBreaker(threshold=2)
    nitro = NitroClient(URL, Credentials("nsroot", SECRET), breaker=breaker)
    registry = registry_of(lambda: netscaler_metrics(nitro))
    try:
        assert registry.get_sample_value("lbctl_netscaler_up") == 1
        breaker.failure()
        assert registry.get_sample_value("lbctl_netscaler_up") == 1  # one miss: not yet
        breaker.failure()
        assert registry.get_sample_value("lbctl_netscaler_up") == 0
        breaker.success()
        assert registry.get_sample_value("lbctl_netscaler_up") == 1
    finally:
        await nitro.aclose()


async def test_vservers_and_members_by_state_as_the_last_health_pass_read_them() -> None:
    nitro = NitroClient(URL, Credentials("nsroot", SECRET))
    health = AdcHealth(nitro, cast(AdcSync, None), lambda _: None)
    registry = registry_of(lambda: netscaler_metrics(nitro, health))

    def value(name: str, state: str) -> float | None:
        return registry.get_sample_value(name, {"state": state})

    try:
        assert value("lbctl_netscaler_vservers", "UP") == 0  # always there, for alerts
        assert value("lbctl_netscaler_vserver_members", "down") == 0
        health.by_service = {
            "ns/web": Health((VserverHealth("a", "UP", 3, 3), VserverHealth("b", "DOWN", 0, 2))),
            "ns/db": Health((VserverHealth("c", "UP", 1, 2),)),
        }
        assert value("lbctl_netscaler_vservers", "UP") == 2
        assert value("lbctl_netscaler_vservers", "DOWN") == 1
        assert value("lbctl_netscaler_vserver_members", "up") == 4
        assert value("lbctl_netscaler_vserver_members", "down") == 3
    finally:
        await nitro.aclose()


def test_created_series_are_dropped_from_the_wrapped_registry_only() -> None:
    inner = CollectorRegistry()
    Histogram("lbctl_demo_seconds", "A histogram.", registry=inner).observe(0.2)
    Counter("lbctl_demo", "A counter.", registry=inner).inc()
    outer = CollectorRegistry()
    outer.register(WithoutCreated(inner))
    exported = generate_latest(outer).decode()
    assert "_created" not in exported
    assert "lbctl_demo_seconds_count 1.0" in exported
    assert "lbctl_demo_total 1.0" in exported
    assert "lbctl_demo_seconds_created" in generate_latest(inner).decode()  # no global switch
