"""Requested addresses and named pools (NetScaler IPAM annotations and spec.loadBalancerIP)."""

from __future__ import annotations

import ipaddress

from lbctl.kube.client import EVENTS, JSON, SERVICES, VIPS, KubeClient
from lbctl.model import IPAM_RANGE_ANNOTATION
from lbctl.reconcile.claims import FRONTEND_IP_ANNOTATION
from tests.integration.conftest import StartLbctl, load_balancer, shared, shown_ip, wait_for_ip
from tests.waiting import eventually

RANGES = '[{"Prod": ["10.82.1.0/24"]}, ["10.82.0.0/24"]]'


def annotated(name: str, **annotations: str) -> JSON:
    service = load_balancer(name)
    service["metadata"]["annotations"] = annotations
    return service


async def warning(kube: KubeClient, namespace: str, name: str, text: str) -> JSON:
    async def probe() -> JSON | None:
        items, _ = await kube.list(EVENTS, namespace)
        found = [e for e in items if e["involvedObject"]["name"] == name
                 and e["type"] == "Warning" and text in e["message"]]  # fmt: skip
        return found[0] if found else None

    return await eventually(probe, what=f"warning {text!r} on {name}")


async def event_of(kube: KubeClient, namespace: str, name: str, reason: str) -> JSON:
    async def probe() -> JSON | None:
        items, _ = await kube.list(EVENTS, namespace)
        found = [e for e in items if e["involvedObject"]["name"] == name and e["reason"] == reason]
        return found[0] if found else None

    return await eventually(probe, what=f"event {reason} on {name}")


async def test_requested_addresses_are_honoured(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """frontend-ip and spec.loadBalancerIP get exactly the address asked for."""
    await start_lbctl(vip_range=RANGES)
    await kube.create(
        SERVICES, namespace, annotated("fip", **{FRONTEND_IP_ANNOTATION: "10.82.0.77"})
    )
    await kube.create(SERVICES, namespace, load_balancer("lbip", loadBalancerIP="10.82.1.9"))
    assert await wait_for_ip(kube, namespace, "fip") == "10.82.0.77"
    assert await wait_for_ip(kube, namespace, "lbip") == "10.82.1.9"
    assert (await kube.get(VIPS, namespace, "lbip"))["spec"]["pool"] == "Prod"


async def test_named_range_and_bad_requests(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """ipam-range picks the pool; an unknown pool or an address outside every pool is an Event."""
    await start_lbctl(vip_range=RANGES)
    await kube.create(SERVICES, namespace, annotated("prod", **{IPAM_RANGE_ANNOTATION: "Prod"}))
    await kube.create(SERVICES, namespace, annotated("nope", **{IPAM_RANGE_ANNOTATION: "Staging"}))
    await kube.create(
        SERVICES, namespace, annotated("far", **{FRONTEND_IP_ANNOTATION: "192.0.2.1"})
    )
    await kube.create(
        SERVICES, namespace, annotated("junk", **{FRONTEND_IP_ANNOTATION: "10.82.0.x"})
    )
    assert await wait_for_ip(kube, namespace, "prod") == "10.82.1.1"
    await warning(kube, namespace, "nope", "no pool named 'Staging'")
    await warning(kube, namespace, "far", "192.0.2.1 is not in any pool")
    await warning(kube, namespace, "junk", "'10.82.0.x' is not an IP address")
    for name in ("nope", "far", "junk"):
        assert shown_ip(await kube.get(SERVICES, namespace, name)) is None


async def test_a_contested_address_goes_to_the_waiting_service_once_freed(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """The second requester waits (Event) and gets the address as soon as the holder leaves."""
    await start_lbctl(vip_range=RANGES)
    await kube.create(
        SERVICES, namespace, annotated("first", **{FRONTEND_IP_ANNOTATION: "10.82.0.50"})
    )
    assert await wait_for_ip(kube, namespace, "first") == "10.82.0.50"
    await kube.create(
        SERVICES, namespace, annotated("second", **{FRONTEND_IP_ANNOTATION: "10.82.0.50"})
    )
    await warning(kube, namespace, "second", "held by")

    await kube.delete(SERVICES, namespace, "first")
    assert await wait_for_ip(kube, namespace, "second") == "10.82.0.50"


async def test_changing_the_requested_address_moves_the_service(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """A new frontend-ip that is free replaces the old address, which becomes free again."""
    running = await start_lbctl(vip_range=RANGES)
    await kube.create(SERVICES, namespace, load_balancer("mover"))
    old = await wait_for_ip(kube, namespace, "mover")
    patch = {"metadata": {"annotations": {FRONTEND_IP_ANNOTATION: "10.82.0.200"}}}
    await kube.patch(SERVICES, namespace, "mover", patch)

    async def moved() -> bool:
        return shown_ip(await kube.get(SERVICES, namespace, "mover")) == "10.82.0.200"

    await eventually(moved, what="service moved")
    assert (await kube.get(VIPS, namespace, "mover"))["spec"]["ipaddress"] == "10.82.0.200"
    assert running.runtime.allocator.holder(ipaddress.ip_address(old)) is None


async def test_services_with_one_sharing_key_share_an_address(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """Same key and namespace, disjoint ports: one address; an overlap is refused naming the
    port; the address outlives one sharer."""
    await start_lbctl(vip_range=RANGES)
    await kube.create(SERVICES, namespace, shared("web", "front", ("TCP", 80), ("TCP", 443)))
    await kube.create(SERVICES, namespace, shared("dns", "front", ("UDP", 53), ("TCP", 53)))
    await kube.create(SERVICES, namespace, shared("clash", "front", ("TCP", 443)))
    web = await wait_for_ip(kube, namespace, "web")
    assert await wait_for_ip(kube, namespace, "dns") == web
    await warning(kube, namespace, "clash", "port 443/TCP")
    vip = await kube.get(VIPS, namespace, "dns")
    assert vip["spec"]["sharingKey"] == "front"
    assert sorted(vip["spec"]["ports"]) == ["TCP/53", "UDP/53"]

    await kube.delete(SERVICES, namespace, "web")
    assert await wait_for_ip(kube, namespace, "clash") == web
    assert shown_ip(await kube.get(SERVICES, namespace, "dns")) == web


async def test_sharing_survives_a_restart(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """After a restart the shared address is rebuilt from the Vips: sharers keep it and a new
    sharer joins it."""
    first = await start_lbctl(vip_range=RANGES)
    await kube.create(SERVICES, namespace, shared("a", "k", ("TCP", 80)))
    await kube.create(SERVICES, namespace, shared("b", "k", ("TCP", 81)))
    address = await wait_for_ip(kube, namespace, "a")
    assert await wait_for_ip(kube, namespace, "b") == address
    await first.stop()

    running = await start_lbctl(vip_range=RANGES)
    sharers = running.runtime.allocator.holders(ipaddress.ip_address(address))
    assert sorted(a.owner for a in sharers) == [f"{namespace}/a", f"{namespace}/b"]
    await kube.create(SERVICES, namespace, shared("c", "k", ("TCP", 82)))
    assert await wait_for_ip(kube, namespace, "c") == address
    await kube.create(SERVICES, namespace, load_balancer("alone"))
    assert await wait_for_ip(kube, namespace, "alone") != address


async def test_a_sharer_changing_ports_is_checked_against_the_others(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """New ports that do not collide with another sharer are recorded; ports that do move the
    Service to an address where they fit, with an Event naming the port."""
    running = await start_lbctl(vip_range=RANGES)
    await kube.create(SERVICES, namespace, shared("a", "k", ("TCP", 80)))
    await kube.create(SERVICES, namespace, shared("b", "k", ("TCP", 81)))
    address = await wait_for_ip(kube, namespace, "a")
    assert await wait_for_ip(kube, namespace, "b") == address
    ports = [{"name": "p82", "protocol": "TCP", "port": 82, "targetPort": 82}]
    await kube.patch(SERVICES, namespace, "b", {"spec": {"ports": ports}})

    async def recorded() -> bool:
        return bool((await kube.get(VIPS, namespace, "b"))["spec"]["ports"] == ["TCP/82"])

    await eventually(recorded, what="new ports recorded")
    held = running.runtime.allocator.get(f"{namespace}/b")
    assert held is not None
    assert (held.address, held.ports) == (ipaddress.ip_address(address), frozenset({("TCP", 82)}))

    ports = [{"name": "p80", "protocol": "TCP", "port": 80, "targetPort": 80}]
    await kube.patch(SERVICES, namespace, "b", {"spec": {"ports": ports}})
    event = await event_of(kube, namespace, "b", "AddressMoved")
    assert "port 80/TCP" in event["message"], event["message"]
    assert shown_ip(await kube.get(SERVICES, namespace, "b")) not in (None, address)


async def test_a_reservation_vip_is_claimed_by_the_service_that_requests_its_address(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """A hand-made Vip with an address and no Service keeps it from automatic allocation; the
    first Service of the namespace requesting it gets it, a second one waits, a restart
    changes nothing, and the address passes on when the claimer goes."""
    first = await start_lbctl(vip_range='["10.83.0.0/30"]')
    reservation = {"apiVersion": "ipam.citrix.com/v1", "kind": "Vip",
                   "metadata": {"name": "kept"}, "spec": {"ipaddress": "10.83.0.1"}}  # fmt: skip
    await kube.create(VIPS, namespace, reservation)
    await eventually(
        lambda: first.runtime.allocator.holder(ipaddress.ip_address("10.83.0.1")),
        what="reservation held",
    )
    await kube.create(SERVICES, namespace, load_balancer("auto"))
    assert await wait_for_ip(kube, namespace, "auto") == "10.83.0.2"
    await kube.create(
        SERVICES, namespace, annotated("claimer", **{FRONTEND_IP_ANNOTATION: "10.83.0.1"})
    )
    assert await wait_for_ip(kube, namespace, "claimer") == "10.83.0.1"
    vip = await kube.get(VIPS, namespace, "claimer")
    assert vip["spec"]["sharingKey"] == "#reserved:kept"
    await kube.create(
        SERVICES, namespace, annotated("late", **{FRONTEND_IP_ANNOTATION: "10.83.0.1"})
    )
    await warning(kube, namespace, "late", "requested address 10.83.0.1 is held by")

    await first.stop()
    second = await start_lbctl(vip_range='["10.83.0.0/30"]')
    await eventually(second.runtime.leading.is_set, what="leading")
    assert not second.runtime.tracker.conflicts
    assert shown_ip(await kube.get(SERVICES, namespace, "claimer")) == "10.83.0.1"
    assert shown_ip(await kube.get(SERVICES, namespace, "late")) is None

    await kube.delete(SERVICES, namespace, "claimer")
    assert await wait_for_ip(kube, namespace, "late") == "10.83.0.1"
    await kube.delete(VIPS, namespace, "kept")
    await eventually(
        lambda: (
            [a.owner for a in second.runtime.allocator.holders(ipaddress.ip_address("10.83.0.1"))]
            == [f"{namespace}/late"]
        ),
        what="the claimer keeps it without the reservation",
    )
