"""The registry of a running lbctl: Services waiting for an address, process metrics, and no
``_created`` series."""

from __future__ import annotations

from prometheus_client import generate_latest

from lbctl import metrics
from lbctl.kube.client import SERVICES, KubeClient
from tests.integration.conftest import StartLbctl, load_balancer, wait_for_ip
from tests.waiting import eventually


async def test_services_pending_counts_waiting_services_by_reason(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    running = await start_lbctl(vip_range='["10.92.0.0/30"]')
    registry = metrics.registry_for(running.runtime)

    def pending(reason: str) -> float | None:
        return registry.get_sample_value("lbctl_services_pending", {"reason": reason})

    assert (
        registry.get_sample_value(
            "lbctl_ipam_addresses_total", {"pool": "default", "family": "ipv4"}
        )
        == 2
    )
    for reason in metrics.NO_ADDRESS_REASONS:
        assert pending(reason) == 0, reason
    for name in ("one", "two", "three"):
        await kube.create(SERVICES, namespace, load_balancer(name))
    await wait_for_ip(kube, namespace, "one")
    await wait_for_ip(kube, namespace, "two")
    await eventually(lambda: pending("PoolExhausted") == 1, what="one Service pending")
    assert sum(pending(reason) or 0 for reason in metrics.PENDING_REASONS) == 1
    await kube.delete(SERVICES, namespace, "one")
    await wait_for_ip(kube, namespace, "three")
    await eventually(lambda: pending("PoolExhausted") == 0, what="no Service pending")

    exported = generate_latest(registry).decode()
    assert "_created" not in exported
    assert (registry.get_sample_value("process_resident_memory_bytes", {}) or 0) > 0
    assert registry.get_sample_value("process_cpu_seconds_total", {}) is not None
    assert (
        registry.get_sample_value("workqueue_unfinished_work_seconds", {"name": metrics.QUEUE})
        is not None
    )
    assert registry.get_sample_value("lbctl_netscaler_up", {}) is None  # no ADC configured
