"""Service lifecycle rules, read back the way a user would with kubectl."""

from __future__ import annotations

import pytest

from lbctl.kube.client import EVENTS, JSON, SERVICES, VIP_ADDRESSES, VIPS, KubeClient
from lbctl.kube.errors import NotFound
from lbctl.metrics import RuntimeCollector
from lbctl.model import LB_FINALIZER, SERVICE_UID_ANNOTATION
from tests.integration.conftest import (
    StartLbctl,
    load_balancer,
    shown_ip,
    wait_for_ip,
)
from tests.waiting import eventually


def untouched(service: JSON) -> bool:
    meta = service["metadata"]
    return (
        "com.citrix.vip" not in (meta.get("annotations") or {})
        and LB_FINALIZER not in (meta.get("finalizers") or [])
        and not ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress")
    )


async def events_for(kube: KubeClient, namespace: str, name: str) -> list[JSON]:
    items, _ = await kube.list(EVENTS, namespace)
    return [e for e in items if e["involvedObject"]["name"] == name]


async def test_services_of_another_class_are_never_touched(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """Default: only class-less Services; a Service of another class is left alone."""
    await start_lbctl()
    await kube.create(
        SERVICES, namespace, load_balancer("foreign", loadBalancerClass="example.com/other")
    )
    await kube.create(SERVICES, namespace, load_balancer("mine"))
    await wait_for_ip(kube, namespace, "mine")

    assert untouched(await kube.get(SERVICES, namespace, "foreign"))
    with pytest.raises(NotFound):
        await kube.get(VIPS, namespace, "foreign")


async def test_a_configured_class_is_served_and_classless_services_are_not(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """With --load-balancer-class, only Services of that class get an address."""
    await start_lbctl(load_balancer_class="lbctl.io/netscaler")
    await kube.create(SERVICES, namespace, load_balancer("classless"))
    await kube.create(
        SERVICES, namespace, load_balancer("classed", loadBalancerClass="lbctl.io/netscaler")
    )
    await wait_for_ip(kube, namespace, "classed")

    assert untouched(await kube.get(SERVICES, namespace, "classless"))


async def test_a_service_recreated_under_the_same_name_is_a_new_service(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """Delete + create (new UID): the old Vip goes, a new one records the new UID."""
    await start_lbctl()
    await kube.create(SERVICES, namespace, load_balancer("phoenix"))
    await wait_for_ip(kube, namespace, "phoenix")
    old_vip_uid = (await kube.get(VIPS, namespace, "phoenix"))["metadata"]["uid"]

    await kube.delete(SERVICES, namespace, "phoenix")

    async def deleted() -> bool:
        try:
            await kube.get(SERVICES, namespace, "phoenix")
        except NotFound:
            return True
        return False

    await eventually(deleted, what="old service gone")
    created = await kube.create(SERVICES, namespace, load_balancer("phoenix"))
    await wait_for_ip(kube, namespace, "phoenix")

    vip = await kube.get(VIPS, namespace, "phoenix")
    assert vip["metadata"]["uid"] != old_vip_uid
    assert vip["metadata"]["annotations"][SERVICE_UID_ANNOTATION] == created["metadata"]["uid"]


async def test_exhaustion_is_reported_and_resolved_when_an_address_frees(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """A full pool gives a Warning Event; the waiting Service gets the address once it frees."""
    running = await start_lbctl(vip_range='["10.80.0.9"]')
    await kube.create(SERVICES, namespace, load_balancer("holder"))
    assert await wait_for_ip(kube, namespace, "holder") == "10.80.0.9"
    await kube.create(SERVICES, namespace, load_balancer("waiter"))

    async def warned() -> list[JSON]:
        return [e for e in await events_for(kube, namespace, "waiter")
                if e["reason"] == "AllocationFailed" and e["type"] == "Warning"]  # fmt: skip

    (warning,) = await eventually(warned, what="AllocationFailed event")
    assert "no free IPv4 address" in warning["message"]
    reasons = [e["reason"] for e in await events_for(kube, namespace, "holder")]
    assert reasons == ["EnsuredLoadBalancer"], "one Event per outcome"

    async def recorded_pending() -> JSON | None:  # the Vip is written after the Event
        try:
            status: JSON = (await kube.get(VIPS, namespace, "waiter")).get("status") or {}
        except NotFound:
            return None
        return status if status.get("state") == "Pending" else None

    pending = await eventually(recorded_pending, what="the waiter's Vip Pending")
    assert pending["conditions"][0]["reason"] == "PoolExhausted"
    (failures,) = [m for m in RuntimeCollector(running.runtime).collect()
                   if m.name == "lbctl_ipam_allocation_failures"]  # fmt: skip
    counted = {tuple(s.labels.values()): s.value for s in failures.samples}
    assert counted[("PoolExhausted",)] >= 1

    await kube.delete(SERVICES, namespace, "holder")
    assert await wait_for_ip(kube, namespace, "waiter") == "10.80.0.9"
    allocated = (await kube.get(VIPS, namespace, "waiter"))["status"]
    assert (allocated["state"], allocated["pool"]) == ("Allocated", "default")

    async def deletion_reported() -> bool:
        reasons = {e["reason"] for e in await events_for(kube, namespace, "holder")}
        return "DeletedLoadBalancer" in reasons

    await eventually(deletion_reported, what="deletion events")


async def test_a_repeated_warning_stays_one_event_across_restarts_and_names_its_reporter(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """A Service that waits through a restart of lbctl (a new process, another replica) keeps
    one AllocationFailed Event whose count rises, as kubectl describe shows it; the Event
    names lbctl and the replica that first reported it."""
    first = await start_lbctl(vip_range='["10.80.1.9"]', instance="lbctl-a")
    await kube.create(SERVICES, namespace, load_balancer("holder"))
    await wait_for_ip(kube, namespace, "holder")
    await kube.create(SERVICES, namespace, load_balancer("waiter"))

    async def warnings() -> list[JSON]:
        return [e for e in await events_for(kube, namespace, "waiter")
                if e["reason"] == "AllocationFailed"]  # fmt: skip

    (warning,) = await eventually(warnings, what="AllocationFailed event")
    assert (warning["reportingComponent"], warning["reportingInstance"]) == ("lbctl", "lbctl-a")
    assert warning["source"]["component"] == "lbctl"
    for instance in ("lbctl-b", "lbctl-c"):
        await first.stop()
        first = await start_lbctl(vip_range='["10.80.1.9"]', instance=instance)
        counted = warning["count"]

        async def counted_again(counted: int = counted) -> JSON | None:
            found = await warnings()
            assert len(found) == 1, [e["metadata"]["name"] for e in found]
            return found[0] if found[0]["count"] > counted else None

        warning = await eventually(counted_again, what=f"the Event counted again by {instance}")
        assert warning["reportingInstance"] == "lbctl-a"


async def test_namespace_flag_limits_what_is_managed(
    kube: KubeClient, namespace: str, second_namespace: str, start_lbctl: StartLbctl
) -> None:
    """--namespace: Services elsewhere are not seen at all."""
    await start_lbctl(namespace=namespace)
    await kube.create(SERVICES, second_namespace, load_balancer("elsewhere"))
    await kube.create(SERVICES, namespace, load_balancer("here"))
    await wait_for_ip(kube, namespace, "here")

    assert untouched(await kube.get(SERVICES, second_namespace, "elsewhere"))
    assert shown_ip(await kube.get(SERVICES, namespace, "here"))


async def test_a_reconcile_with_nothing_to_change_writes_nothing(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """Status and annotation are written only when they change: an unrelated edit costs 0."""
    running = await start_lbctl()
    await kube.create(SERVICES, namespace, load_balancer("steady"))
    await wait_for_ip(kube, namespace, "steady")
    queue = running.runtime.queue
    await eventually(lambda: len(queue) == 0 and queue.processing == 0, what="queue idle")

    def writes() -> int:
        return sum(running.client.requests[verb] for verb in ("create", "patch", "delete"))

    before, reconciles = writes(), running.runtime.controller.reconciles
    await kube.patch(SERVICES, namespace, "steady", {"metadata": {"labels": {"tier": "web"}}})
    await eventually(
        lambda: running.runtime.controller.reconciles > reconciles, what="reconciled again"
    )
    await eventually(lambda: len(queue) == 0 and queue.processing == 0, what="queue idle")
    assert writes() == before, dict(running.client.results)


async def test_a_new_service_costs_three_object_writes(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """The durable address record, the Vip (created with its status), and the Service
    (finalizer, annotation and status in one write to its status subresource): one write
    each, plus one Event."""
    running = await start_lbctl()
    queue = running.runtime.queue
    await eventually(lambda: len(queue) == 0 and queue.processing == 0, what="queue idle")
    before = dict(running.client.calls)
    await kube.create(SERVICES, namespace, load_balancer("counted"))
    await wait_for_ip(kube, namespace, "counted")
    await eventually(lambda: len(queue) == 0 and queue.processing == 0, what="queue idle")

    writes = {
        call: count - before.get(call, 0)
        for call, count in running.client.calls.items()
        if call[1] in ("create", "patch", "delete") and count != before.get(call, 0)
    }
    assert writes == {
        ("vipaddresses", "create"): 1,
        ("vips", "create"): 1,
        ("services/status", "patch"): 1,
        ("events", "create"): 1,
    }
    service = await kube.get(SERVICES, namespace, "counted")
    assert LB_FINALIZER in service["metadata"]["finalizers"]
    record = await kube.get(VIP_ADDRESSES, None, shown_ip(service) or "")
    assert [h["name"] for h in record["spec"]["holders"]] == ["counted"]
    vip = await kube.get(VIPS, namespace, "counted")
    assert (vip["status"]["state"], vip["status"]["pool"]) == ("Allocated", "default")
    assert vip["status"]["conditions"][0]["status"] == "True"
