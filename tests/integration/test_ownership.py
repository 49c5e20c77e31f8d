"""Ownership: lbctl releases only what it provably made, and instances sharing a NetScaler
never touch each other's objects."""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from lbctl.kube.client import JSON, SERVICES, VIP_ADDRESSES, VIPS, KubeClient
from lbctl.kube.errors import NotFound
from lbctl.model import CLASS_ANNOTATION, LB_FINALIZER, VIP_ANNOTATION
from lbctl.nitro.client import Credentials, NitroClient
from tests.integration.conftest import (
    SIM_PASSWORD,
    RunningSimulator,
    StartLbctl,
    load_balancer,
    settled,
    shown_ip,
    wait_for_ip,
)
from tests.integration.invariants import ShownAddresses
from tests.integration.test_adc_flow import configured
from tests.integration.test_lifecycle import events_for
from tests.waiting import eventually

MakeNode = Callable[..., Awaitable[None]]
OTHER_IP = "192.0.2.9"
"""The address another controller shows on its Service."""


def of_class(name: str, load_balancer_class: str | None, **spec: Any) -> JSON:
    if load_balancer_class:
        spec["loadBalancerClass"] = load_balancer_class
    return load_balancer(name, **spec)


async def show_other_controllers_address(kube: KubeClient, namespace: str, name: str) -> None:
    status = {"loadBalancer": {"ingress": [{"ip": OTHER_IP}]}}
    await kube.patch(SERVICES, namespace, name, {"status": status}, subresource="status")


def ingress(service: JSON) -> list[str]:
    found = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [str(i["ip"]) for i in found]


@pytest.mark.parametrize(
    ("lbctl_class", "foreign_class"), [("lbctl.io/x", None), (None, "example.com/y")]
)
async def test_a_service_of_another_controller_keeps_its_finalizer_and_status(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl,
    lbctl_class: str | None, foreign_class: str | None,
) -> None:  # fmt: skip
    """The standard finalizer and an ingress IP are no proof that a Service is lbctl's."""
    running = await start_lbctl(load_balancer_class=lbctl_class)
    await kube.create(SERVICES, namespace, of_class("foreign", foreign_class))
    await kube.patch(SERVICES, namespace, "foreign", {"metadata": {"finalizers": [LB_FINALIZER]}})
    await show_other_controllers_address(kube, namespace, "foreign")
    await kube.create(SERVICES, namespace, of_class("mine", lbctl_class))
    await wait_for_ip(kube, namespace, "mine")
    label = {"metadata": {"labels": {"touched": "yes"}}}
    await settled(running, lambda: kube.patch(SERVICES, namespace, "foreign", label))

    foreign = await kube.get(SERVICES, namespace, "foreign")
    assert foreign["metadata"]["finalizers"] == [LB_FINALIZER]
    assert ingress(foreign) == [OTHER_IP]
    reasons = {e["reason"] for e in await events_for(kube, namespace, "foreign")}
    assert not reasons & {"DeletedLoadBalancer"}, reasons


@pytest.mark.parametrize(
    ("lbctl_class", "new_class", "other_status"),
    [(None, "example.com/other", True), ("lbctl.io/x", None, False)],
)
async def test_a_service_that_left_lbctls_class_while_lbctl_was_down_is_released(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl,
    simulator: RunningSimulator, nodes: MakeNode,
    lbctl_class: str | None, new_class: str | None, other_status: bool,
) -> None:  # fmt: skip
    """LoadBalancer -> ClusterIP -> LoadBalancer of another class, seen as one change."""
    await nodes(f"{namespace}-a", "10.10.0.1")
    first = await start_lbctl(load_balancer_class=lbctl_class, adc=simulator.settings())
    await kube.create(SERVICES, namespace, of_class("flip", lbctl_class))
    ip = await wait_for_ip(kube, namespace, "flip")
    base = f"lbctl-{namespace}_flip_80-tcp"
    await configured(simulator, f"{base}_sgp", 1)
    await first.stop()

    await kube.patch(SERVICES, namespace, "flip", {"spec": {"type": "ClusterIP"}})
    spec: dict[str, Any] = {"type": "LoadBalancer", "loadBalancerClass": new_class}
    await kube.patch(SERVICES, namespace, "flip", {"spec": spec})
    if other_status:
        await show_other_controllers_address(kube, namespace, "flip")

    second = await start_lbctl(load_balancer_class=lbctl_class, adc=simulator.settings())

    async def vip_gone() -> bool:
        try:
            await kube.get(VIPS, namespace, "flip")
        except NotFound:
            return True
        return False

    await eventually(vip_gone, what="Vip deleted")

    async def released() -> JSON | None:
        service = await kube.get(SERVICES, namespace, "flip")
        meta = service["metadata"]
        done = LB_FINALIZER not in (meta.get("finalizers") or []) and VIP_ANNOTATION not in (
            meta.get("annotations") or {}
        )
        return service if done else None

    service = await eventually(released, what="finalizer and annotation removed")
    assert ingress(service) == ([OTHER_IP] if other_status else [])
    assert not any(n.startswith(base) for n in simulator.names("lbvserver"))
    assert not any(n.startswith(base) for n in simulator.names("servicegroup"))
    assert second.runtime.allocator.holder(ipaddress.ip_address(ip)) is None

    async def deletion_reported() -> bool:
        reasons = {e["reason"] for e in await events_for(kube, namespace, "flip")}
        return "DeletedLoadBalancer" in reasons

    await eventually(deletion_reported, what="the DeletedLoadBalancer Event")


@pytest.mark.parametrize("scope", ["namespace", "class"])
async def test_instances_sharing_a_netscaler_never_touch_each_others_objects(
    kube: KubeClient, namespace: str, second_namespace: str, start_lbctl: StartLbctl,
    simulator: RunningSimulator, nodes: MakeNode, scope: str,
) -> None:  # fmt: skip
    """Two instances with one prefix, scoped by namespace or by class, each run drift passes:
    neither deletes or changes the other's objects, nor one made by hand."""
    await nodes(f"{namespace}-a", "10.10.0.1")
    if scope == "namespace":
        scopes = [{"namespace": namespace}, {"namespace": second_namespace}]
        wanted = [(namespace, of_class("web", None)), (second_namespace, of_class("web", None))]
    else:
        scopes = [{"load_balancer_class": "lbctl.io/x"}, {"load_balancer_class": "lbctl.io/y"}]
        wanted = [
            (namespace, of_class("x", "lbctl.io/x")),
            (namespace, of_class("y", "lbctl.io/y")),
        ]
    admin = NitroClient(simulator.url, Credentials("nsroot", SIM_PASSWORD))
    foreign = {
        f"lbctl-{namespace}_legacy_80-tcp_lbv": f"lbctl owner=lbctl service={namespace}/legacy"
        " port=80/TCP",
        f"lbctl-{namespace}_other_80-tcp_lbv": "lbctl owner=lbctl scope=ns:elsewhere"
        f" service={namespace}/other port=80/TCP",
    }
    try:
        for index, (name, comment) in enumerate(foreign.items()):
            address = f"192.0.2.{60 + index}"
            vserver = {"name": name, "servicetype": "TCP", "ipv46": address, "port": 80}
            await admin.add("lbvserver", {**vserver, "comment": comment})
    finally:
        await admin.aclose()
    # Instances that do not see each other's Vips need pools of their own.
    running = [
        await start_lbctl(
            f'["10.77.{index}.0/24"]', adc=simulator.settings(resync_period=0.5), **scoped
        )
        for index, scoped in enumerate(scopes, start=1)
    ]
    for ns, body in wanted:
        await kube.create(SERVICES, ns, body)
    groups = []
    for ns, body in wanted:
        await wait_for_ip(kube, ns, body["metadata"]["name"])
        groups.append(f"lbctl-{ns}_{body['metadata']['name']}_80-tcp_sgp")
        await configured(simulator, groups[-1], 1)
    adcs = [r.runtime.adc for r in running if r.runtime.adc is not None]

    async def passes(count: int) -> None:
        marks = [a.passes + count for a in adcs]
        await eventually(
            lambda: all(a.passes >= m for a, m in zip(adcs, marks, strict=True)),
            what=f"{count} more drift passes of each instance",
        )

    await passes(1)
    simulator.sim.reset_counts()
    await passes(3)
    assert [(r.method, r.resource, r.name) for r in simulator.writes()] == []
    for group in groups:
        assert len(await configured_members(simulator, group)) == 1, group
    assert set(foreign) <= simulator.names("lbvserver")


async def configured_members(sim: RunningSimulator, group: str) -> list[dict[str, Any]]:
    return [
        m for m in sim.sim.objects("servicegroup_servicegroupmember_binding")
        if m["servicegroupname"] == group
    ]  # fmt: skip


async def test_an_address_spelled_with_a_zone_id_is_refused_and_the_victim_keeps_its_own(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """``fd00:92::1%x`` is not a second address: the tenant gets a Warning Event naming it,
    and the Service holding fd00:92::1 keeps it, also after the tenant is deleted."""
    running = await start_lbctl(vip_range='["10.92.0.0/29", "fd00:92::/125"]')
    six: dict[str, Any] = {"ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv6"]}
    frontend = "service.citrix.com/frontend-ip"
    victim = load_balancer("victim", **six)
    victim["metadata"]["annotations"] = {frontend: "fd00:92::1"}
    await kube.create(SERVICES, namespace, victim)
    assert await wait_for_ip(kube, namespace, "victim") == "fd00:92::1"

    zoned = "fd00:92::1%x"
    requester = load_balancer("requester", **six)
    requester["metadata"]["annotations"] = {frontend: zoned}
    preset = load_balancer("preset", **six)
    preset["metadata"]["annotations"] = {VIP_ANNOTATION: zoned}
    await kube.create(SERVICES, namespace, requester)
    await kube.create(SERVICES, namespace, preset)
    # The apiserver does not validate spec.loadBalancerIP: lbctl must refuse it too.
    await kube.create(SERVICES, namespace, load_balancer("legacy", loadBalancerIP=zoned, **six))

    for name in ("requester", "legacy"):

        async def warned(name: str = name) -> list[JSON]:
            return [
                e for e in await events_for(kube, namespace, name)
                if e["type"] == "Warning" and e["reason"] == "AllocationFailed"
                and f"'{zoned}' has an IPv6 zone id" in e["message"]
            ]  # fmt: skip

        await eventually(warned, what=f"AllocationFailed naming the zoned address on {name}")
    vip = await eventually(
        lambda: kube.get(VIPS, namespace, "requester"), what="the requester's Vip"
    )
    assert vip["spec"]["ipaddress"] == ""
    # The lowest free address: fd00:92:: is the subnet-router anycast address, ::1 the victim's.
    assert (await wait_for_ip(kube, namespace, "preset")) == "fd00:92::2"
    victim_ip = ipaddress.ip_address("fd00:92::1")
    holder = running.runtime.allocator.holder(victim_ip)
    assert holder is not None
    assert holder.owner == f"{namespace}/victim"

    for name in ("requester", "preset", "legacy"):
        await kube.delete(SERVICES, namespace, name)

    async def tenants_gone() -> bool:
        items, _ = await kube.list(SERVICES, namespace)
        return {i["metadata"]["name"] for i in items} == {"victim"}

    await eventually(tenants_gone, what="tenants deleted")
    await eventually(
        lambda: len(running.runtime.queue) == 0 and running.runtime.queue.processing == 0,
        what="queue idle",
    )
    assert await wait_for_ip(kube, namespace, "victim") == "fd00:92::1"
    assert (await kube.get(VIPS, namespace, "victim"))["spec"]["ipaddress"] == "fd00:92::1"
    holder = running.runtime.allocator.holder(victim_ip)
    assert holder is not None
    assert holder.owner == f"{namespace}/victim"


async def test_the_class_less_and_a_classed_instance_leave_each_others_services_alone(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """The default instance and one with --load-balancer-class, on one pool: a class-less
    Service, its Vip (which names no class) and its address stay the first one's; the second
    writes nothing for it."""
    pool = '["10.77.38.0/29"]'
    await start_lbctl(pool)
    await kube.create(SERVICES, namespace, of_class("plain", None))
    ip = await wait_for_ip(kube, namespace, "plain")
    vip_version = (await kube.get(VIPS, namespace, "plain"))["metadata"]["resourceVersion"]
    async with ShownAddresses(kube, None) as watch:
        classed = await start_lbctl(pool, load_balancer_class="lbctl.io/x")
        await eventually(classed.runtime.leading.is_set, what="the classed instance leads")
        await kube.create(SERVICES, namespace, of_class("classed", "lbctl.io/x"))
        other = await wait_for_ip(kube, namespace, "classed")
        label = {"metadata": {"labels": {"touched": "yes"}}}
        labelled: list[JSON] = []

        async def touch() -> None:
            labelled.append(await kube.patch(SERVICES, namespace, "plain", label))

        await settled(classed, touch)
    plain = await kube.get(SERVICES, namespace, "plain")
    assert plain["metadata"]["resourceVersion"] == labelled[0]["metadata"]["resourceVersion"]
    assert (ingress(plain), plain["metadata"]["finalizers"]) == ([ip], [LB_FINALIZER])
    vip = await kube.get(VIPS, namespace, "plain")
    assert (vip["metadata"]["resourceVersion"], vip["spec"]["ipaddress"]) == (vip_version, ip)
    assert other != ip
    reasons = {e["reason"] for e in await events_for(kube, namespace, "plain")}
    assert not reasons & {"DeletedLoadBalancer"}, reasons
    assert not watch.violations, watch.violations


async def test_a_class_mark_copied_onto_another_controllers_service_is_no_mark(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """A Service exported from one lbctl managed (so it carries lbctl's class mark) and
    created again with another class keeps that controller's finalizer and status."""
    running = await start_lbctl()
    body = of_class("exported", "example.com/other")
    body["metadata"]["annotations"] = {CLASS_ANNOTATION: ""}
    await kube.create(SERVICES, namespace, body)
    await kube.patch(SERVICES, namespace, "exported", {"metadata": {"finalizers": [LB_FINALIZER]}})
    label = {"metadata": {"labels": {"touched": "yes"}}}
    await settled(running, lambda: show_other_controllers_address(kube, namespace, "exported"))
    await settled(running, lambda: kube.patch(SERVICES, namespace, "exported", label))
    exported = await kube.get(SERVICES, namespace, "exported")
    assert exported["metadata"]["finalizers"] == [LB_FINALIZER]
    assert ingress(exported) == [OTHER_IP]


@pytest.mark.parametrize(
    "spelling", ["10.77.30.1", "10.77.30.01", "10.77.30.0001", "::ffff:10.77.30.1"]
)
async def test_an_address_another_controller_shows_is_given_to_nobody_while_it_does(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl, spelling: str
) -> None:
    """Another controller's Service shows .1 of lbctl's pool (it has no address record): a
    new Service gets .2, one that carries ``com.citrix.vip: 10.77.30.1`` (copied by hand) is
    not given .1 either, and .1 goes to a waiting Service once the other stops showing it.
    Also when the other spells it with a leading zero, which the apiserver accepts there."""
    await start_lbctl('["10.77.30.0/29"]')
    await kube.create(SERVICES, namespace, of_class("foreign", "example.com/other"))
    status = {"loadBalancer": {"ingress": [{"ip": spelling}]}}
    await kube.patch(SERVICES, namespace, "foreign", {"status": status}, subresource="status")
    copied = of_class("copied", None)  # the copy itself shows .1: a user's doing
    copied["metadata"]["annotations"] = {VIP_ANNOTATION: "10.77.30.1"}
    await kube.create(SERVICES, namespace, copied)
    assert await wait_for_ip(kube, namespace, "copied") == "10.77.30.2"
    async with ShownAddresses(kube, namespace) as watch:
        await kube.create(SERVICES, namespace, of_class("mine", None))
        assert await wait_for_ip(kube, namespace, "mine") == "10.77.30.3"
        requester = of_class("requester", None)
        requester["metadata"]["annotations"] = {"service.citrix.com/frontend-ip": "10.77.30.1"}
        await kube.create(SERVICES, namespace, requester)
        await eventually(lambda: vip_pending(kube, namespace, "requester"), what="requester waits")
        cleared = {"loadBalancer": {"ingress": None}}
        await kube.patch(SERVICES, namespace, "foreign", {"status": cleared}, subresource="status")
        assert await wait_for_ip(kube, namespace, "requester") == "10.77.30.1"
    assert not watch.violations, watch.violations


async def vip_pending(kube: KubeClient, namespace: str, name: str) -> bool:
    with contextlib.suppress(NotFound):
        vip = await kube.get(VIPS, namespace, name)
        return (vip.get("status") or {}).get("state") == "Pending"
    return False


async def flip_to_class_less(kube: KubeClient, namespace: str, name: str) -> None:
    """LoadBalancer of class x -> ClusterIP -> LoadBalancer with no class."""
    await kube.patch(SERVICES, namespace, name, {"spec": {"type": "ClusterIP"}})
    spec = {"type": "LoadBalancer", "loadBalancerClass": None}
    await kube.patch(SERVICES, namespace, name, {"spec": spec})


@pytest.mark.parametrize(
    "then", ["classed_instance_returns", "leaves_type_load_balancer", "deleted"]
)
async def test_a_service_another_instance_took_over_is_that_instances(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl, then: str
) -> None:
    """flip was the classed instance's (class x); while that instance is down it becomes a
    class-less LoadBalancer, and the class-less instance takes it over, keeping its address
    and adopting the Vip (its class annotation rewritten).  Then: the classed instance, back,
    leaves it alone; or it leaves type LoadBalancer and the class-less instance releases it
    all; or it is deleted and not left Terminating."""
    pool = '["10.77.41.0/29"]'
    classed = await start_lbctl(pool, load_balancer_class="lbctl.io/x")
    await kube.create(SERVICES, namespace, of_class("flip", "lbctl.io/x"))
    ip = await wait_for_ip(kube, namespace, "flip")
    await classed.stop()
    await flip_to_class_less(kube, namespace, "flip")
    plain = await start_lbctl(pool)
    assert await wait_for_ip(kube, namespace, "flip") == ip

    async def record_is_class_less() -> bool:
        record = await kube.get(VIP_ADDRESSES, None, ip)
        return all(not h.get("loadBalancerClass") for h in record["spec"]["holders"])

    await eventually(record_is_class_less, what="the class-less instance holds the record")
    vip = await kube.get(VIPS, namespace, "flip")
    assert CLASS_ANNOTATION not in (vip["metadata"].get("annotations") or {})

    if then == "classed_instance_returns":
        before = await kube.get(SERVICES, namespace, "flip")
        async with ShownAddresses(kube, namespace) as watch:
            back = await start_lbctl(pool, load_balancer_class="lbctl.io/x")
            await eventually(back.runtime.leading.is_set, what="classed instance leads")
            label = {"metadata": {"labels": {"touched": "yes"}}}
            await settled(back, lambda: kube.patch(SERVICES, namespace, "flip", label))
            again = {"metadata": {"labels": {"touched": "again"}}}  # a change: a new event
            await settled(plain, lambda: kube.patch(SERVICES, namespace, "flip", again))
        after = await kube.get(SERVICES, namespace, "flip")
        assert shown_ip(after) == ip, (shown_ip(after), after["metadata"], after.get("status"))
        assert after["metadata"]["annotations"].get(CLASS_ANNOTATION) == ""
        assert before["metadata"]["finalizers"] == after["metadata"]["finalizers"]
        assert not watch.violations, watch.violations
    elif then == "deleted":
        await kube.patch(SERVICES, namespace, "flip", {"spec": {"type": "ClusterIP"}})
        await settled(plain, lambda: kube.delete(SERVICES, namespace, "flip"))

        async def gone() -> bool:
            with contextlib.suppress(NotFound):
                await kube.get(SERVICES, namespace, "flip")
                return False
            return True

        await eventually(gone, within=15, what="flip deleted (not stuck Terminating)")
    else:
        await settled(plain, lambda: kube.patch(SERVICES, namespace, "flip",
                                                {"spec": {"type": "ClusterIP"}}))  # fmt: skip

        async def released() -> bool:
            meta = (await kube.get(SERVICES, namespace, "flip"))["metadata"]
            return LB_FINALIZER not in (meta.get("finalizers") or []) and VIP_ANNOTATION not in (
                meta.get("annotations") or {}
            )

        await eventually(released, within=15, what="flip released (finalizer, annotation)")

        async def record_gone() -> bool:
            with contextlib.suppress(NotFound):
                await kube.get(VIP_ADDRESSES, None, ip)
                return False
            return True

        await eventually(record_gone, within=15, what="the address record released")


async def test_a_classed_services_vip_edited_by_hand_stays_that_instances(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """Vip a (made by the class x instance) gets spec.service: b by hand.  The class-less
    instance, whose index also holds a's address, must not take a for its own (it stripped
    a and deleted its Vip); the class x instance writes the Vip back."""
    pool = '["10.77.43.0/29"]'
    classed = await start_lbctl(pool, load_balancer_class="lbctl.io/x")
    plain = await start_lbctl(pool)
    await kube.create(SERVICES, namespace, of_class("a", "lbctl.io/x"))
    ip = await wait_for_ip(kube, namespace, "a")
    vip_uid = (await kube.get(VIPS, namespace, "a"))["metadata"]["uid"]
    async with ShownAddresses(kube, namespace) as watch:
        await settled(classed, lambda: kube.patch(VIPS, namespace, "a", {"spec": {"service": "b"}}))
        label = {"metadata": {"labels": {"touched": "yes"}}}
        await settled(plain, lambda: kube.patch(SERVICES, namespace, "a", label))
        await settled(classed, lambda: kube.patch(SERVICES, namespace, "a", {"metadata": {
            "labels": {"touched": "again"}}}))  # fmt: skip
    vip = await kube.get(VIPS, namespace, "a")
    assert (vip["metadata"]["uid"], vip["spec"]["service"]) == (vip_uid, "a")
    a = await kube.get(SERVICES, namespace, "a")
    assert (shown_ip(a), a["metadata"]["finalizers"]) == (ip, [LB_FINALIZER])
    reasons = {e["reason"] for e in await events_for(kube, namespace, "a")}
    assert not reasons & {"DeletedLoadBalancer"}, reasons
    assert not watch.violations, watch.violations
