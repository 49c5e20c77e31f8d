"""Bad input corpus, cluster part: hostile Services, hand-mangled Vips and a misbehaving ADC.

Each test runs one lbctl and many cases side by side in one namespace; every case states its
outcome (a Warning Event on *that* object, a Vip condition, a port error, or the apiserver's own
rejection) and the well-formed Service next to them must still get its VIP and ADC config.  At
the end no address is ever shown by two Services that do not share it on purpose.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from lbctl.kube.client import EVENTS, SERVICES, VIPS, KubeClient
from lbctl.kube.errors import Invalid, NotFound
from tests.integration.conftest import (
    RunningSimulator,
    StartLbctl,
    load_balancer,
    shown_ip,
    wait_for_ip,
)
from tests.waiting import eventually

MakeNode = Callable[..., Awaitable[None]]
RANGE = '[{"Gold": ["10.78.1.0/28"]}, ["10.78.0.0/26"]]'
LBV = "service.citrix.com/lbvserver"
FRONTEND = "service.citrix.com/frontend-ip"
POOL = "service.citrix.com/ipam-range"
SHARED = "lbctl.io/allow-shared-ip"


def annotated(name: str, annotations: dict[str, str], **spec: Any) -> dict[str, Any]:
    service = load_balancer(name, **spec)
    service["metadata"]["annotations"] = annotations
    return service


async def events_of(kube: KubeClient, namespace: str, name: str) -> list[tuple[str, str, str]]:
    items, _ = await kube.list(EVENTS, namespace)
    return [
        (e["type"], e["reason"], e.get("message", ""))
        for e in items
        if e["involvedObject"]["name"] == name
    ]


async def warned(kube: KubeClient, namespace: str, name: str, reason: str, text: str) -> None:
    async def probe() -> bool:
        return any(
            kind == "Warning" and why == reason and text in message
            for kind, why, message in await events_of(kube, namespace, name)
        )

    await eventually(probe, what=f"Warning {reason} {text!r} on {name}")


async def vip_reason(kube: KubeClient, namespace: str, name: str) -> str | None:
    try:
        vip = await kube.get(VIPS, namespace, name)
    except NotFound:
        return None
    conditions = (vip.get("status") or {}).get("conditions") or [{}]
    return conditions[0].get("reason")  # type: ignore[no-any-return]


async def no_address_twice(
    kube: KubeClient, namespace: str, shared: frozenset[str] = frozenset()
) -> None:
    """No address is shown by two Services (except those sharing on purpose)."""
    services, _ = await kube.list(SERVICES, namespace)
    shown = Counter(
        ip for s in services if s["metadata"]["name"] not in shared and (ip := shown_ip(s))
    )
    assert all(count == 1 for count in shown.values()), shown


def lbvservers(sim: RunningSimulator, namespace: str, name: str) -> set[str]:
    prefix = f"lbctl-{namespace}_{name}_"
    return {n for n in sim.names("lbvserver") if n.startswith(prefix)}


# -- 2. annotations --------------------------------------------------------------------------

ADC_ANNOTATION_CASES = {
    # name: (lbvserver annotation, text of the InvalidAnnotation Event)
    "lbv-bad-json": ('{"lbmethod": ', "is not valid JSON"),
    "lbv-unknown-attr": ('{"lbmethod": "ROUNDROBIN", "bogus": 1}', "'bogus' is not supported"),
    "lbv-wrong-type": ('{"80-tcp": {"timeout": "ten"}}', "timeout='ten' must be an integer"),
    "lbv-list-for-attrs": ('{"80-tcp": ["lbmethod"]}', "must be a JSON object of attributes"),
    "lbv-100kb": ('{"netmask": "' + "x" * 100_000 + '"}', "longer than 16384 characters"),
    "lbv-deep-nesting": ("[" * 3000, "is nested too deeply"),
}

ADDRESS_CASES: dict[str, tuple[dict[str, str], str, str]] = {
    # name: (annotations, Vip condition reason, text of the AllocationFailed Event)
    "fip-999": ({FRONTEND: "999.1.1.1"}, "InvalidRequest", "'999.1.1.1' is not an IP address"),
    "fip-cidr": ({FRONTEND: "10.78.0.9/24"}, "InvalidRequest", "'10.78.0.9/24' is not an IP"),
    "fip-blank": ({FRONTEND: " "}, "InvalidRequest", "' ' is not an IP address"),
    "fip-ipv6": (
        {FRONTEND: "2001:db8::99"},
        "InvalidRequest",
        "2001:db8::99 is IPv6 but the Service's first IP family (spec.ipFamilies) is IPv4",
    ),
    "fip-outside": ({FRONTEND: "10.99.0.1"}, "AddressNotInPool", "10.99.0.1 is not in any"),
    "fip-zone": (
        {FRONTEND: "fe80::1%eth0"},
        "InvalidRequest",
        "frontend-ip 'fe80::1%eth0' has an IPv6 zone id (%eth0)",
    ),
    "pool-missing": ({POOL: "Platinum"}, "UnknownPool", "Platinum"),
    "pool-other-case": ({POOL: "gold"}, "UnknownPool", "gold"),
}
LB_IP_CASES = {
    # name: (spec.loadBalancerIP, text of the AllocationFailed Event); the apiserver does not
    # validate the field, so lbctl must.
    "lbip-garbage": ("not-an-ip", "spec.loadBalancerIP 'not-an-ip' is not an IP address"),
    "lbip-octet-300": ("10.78.0.300", "spec.loadBalancerIP '10.78.0.300' is not an IP"),
}


async def test_bad_annotations_warn_only_their_own_service(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl,
    simulator: RunningSimulator, nodes: MakeNode,
) -> None:  # fmt: skip
    await nodes(f"{namespace}-a", "10.10.0.1")
    await start_lbctl(RANGE, adc=simulator.settings())
    for name, (value, _) in ADC_ANNOTATION_CASES.items():
        await kube.create(SERVICES, namespace, annotated(name, {LBV: value}))
    for name, (wanted, _, _) in ADDRESS_CASES.items():
        await kube.create(SERVICES, namespace, annotated(name, wanted))
    for name, (value, _) in LB_IP_CASES.items():
        await kube.create(SERVICES, namespace, load_balancer(name, loadBalancerIP=value))
    # The annotation wins over a garbage spec.loadBalancerIP.
    await kube.create(
        SERVICES, namespace,
        annotated("lbip-overridden", {FRONTEND: "10.78.0.40"}, loadBalancerIP="junk"),
    )  # fmt: skip
    # Odd sharing keys: blank means "no sharing"; any other string is just a key.
    await kube.create(SERVICES, namespace, annotated("share-blank-a", {SHARED: "  "}))
    await kube.create(SERVICES, namespace, annotated("share-blank-b", {SHARED: "\t"}))
    await kube.create(SERVICES, namespace, annotated("share-emoji-a", {SHARED: "🙂 x"}))
    await kube.create(
        SERVICES, namespace, annotated("share-emoji-b", {SHARED: "🙂 x"}, ports=[
            {"name": "dns", "protocol": "UDP", "port": 53, "targetPort": 53}])
    )  # fmt: skip
    await kube.create(SERVICES, namespace, annotated("share-toolong", {SHARED: "k" * 300}))
    await kube.create(SERVICES, namespace, annotated("gold", {POOL: " Gold "}))
    await kube.create(SERVICES, namespace, load_balancer("good"))

    good = await wait_for_ip(kube, namespace, "good")
    await eventually(lambda: lbvservers(simulator, namespace, "good"), what="good on the ADC")
    assert good.startswith("10.78.0.")
    assert (await wait_for_ip(kube, namespace, "gold")).startswith("10.78.1.")

    for name, (_, text) in ADC_ANNOTATION_CASES.items():
        await warned(kube, namespace, name, "InvalidAnnotation", text)
        # The address is still given; nothing of it goes to the ADC.
        assert (await wait_for_ip(kube, namespace, name)).startswith("10.78.0.")
        assert not lbvservers(simulator, namespace, name), name

    cases = {**ADDRESS_CASES, **{n: ({}, "InvalidRequest", t) for n, (_, t) in LB_IP_CASES.items()}}
    for name, (_, reason, text) in cases.items():
        await warned(kube, namespace, name, "AllocationFailed", text)

        async def pending(name: str = name, reason: str = reason) -> bool:
            return await vip_reason(kube, namespace, name) == reason

        await eventually(pending, what=f"Vip {name} Pending with {reason}")
        assert shown_ip(await kube.get(SERVICES, namespace, name)) is None
        assert not lbvservers(simulator, namespace, name)

    assert await wait_for_ip(kube, namespace, "lbip-overridden") == "10.78.0.40"
    blank_a = await wait_for_ip(kube, namespace, "share-blank-a")
    blank_b = await wait_for_ip(kube, namespace, "share-blank-b")
    assert blank_a != blank_b
    emoji_a = await wait_for_ip(kube, namespace, "share-emoji-a")
    assert await wait_for_ip(kube, namespace, "share-emoji-b") == emoji_a
    # A key longer than the Vip schema allows: the apiserver refuses the Vip, so the Service
    # gets no address and says why.
    await warned(kube, namespace, "share-toolong", "SyncLoadBalancerFailed", "sharingKey")
    assert shown_ip(await kube.get(SERVICES, namespace, "share-toolong")) is None
    await no_address_twice(kube, namespace, shared=frozenset({"share-emoji-a", "share-emoji-b"}))
    good_events = await events_of(kube, namespace, "good")
    assert not [e for e in good_events if e[0] == "Warning"], good_events


# -- 3. ports and protocols --------------------------------------------------------------------


def port_list(*ports: tuple[str, int]) -> list[dict[str, Any]]:
    return [
        {"name": f"p{i}", "protocol": proto, "port": port, "targetPort": port}
        for i, (proto, port) in enumerate(ports)
    ]


async def port_errors(kube: KubeClient, namespace: str, name: str) -> list[dict[str, Any]] | None:
    service = await kube.get(SERVICES, namespace, name)
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [{}]
    return ingress[0].get("ports")  # type: ignore[no-any-return]


async def test_odd_ports_and_protocols(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl,
    simulator: RunningSimulator, nodes: MakeNode,
) -> None:  # fmt: skip
    await nodes(f"{namespace}-a", "10.10.0.1")
    await start_lbctl(RANGE, adc=simulator.settings())
    many = port_list(*[("TCP" if i % 2 else "UDP", 10_000 + i) for i in range(50)])
    await kube.create(SERVICES, namespace, load_balancer("sctp-only", ports=port_list(("SCTP", 9))))
    await kube.create(SERVICES, namespace, load_balancer("fifty", ports=many))
    await kube.create(SERVICES, namespace, annotated(
        "ssl", {"service.citrix.com/service-type-0": "SSL"}))  # fmt: skip
    await kube.create(SERVICES, namespace, annotated(
        "udp-as-http", {"service.citrix.com/service-type-0": "HTTP"},
        ports=port_list(("UDP", 53))))  # fmt: skip
    await kube.create(SERVICES, namespace, annotated(
        "http-padded", {"service.citrix.com/service-type-0": "  http "}))  # fmt: skip
    await kube.create(SERVICES, namespace, load_balancer("flip"))
    await kube.create(SERVICES, namespace, load_balancer("good"))

    await wait_for_ip(kube, namespace, "good")
    await eventually(lambda: lbvservers(simulator, namespace, "good"), what="good on the ADC")

    # Protocols NetScaler cannot serve: the VIP is given, the port reported, nothing on the ADC.
    for name, proto, port, text in [
        ("sctp-only", "SCTP", 9, "protocol SCTP"),
        ("ssl", "TCP", 80, "service type SSL"),
        ("udp-as-http", "UDP", 53, "protocol UDP as NetScaler service type HTTP"),
    ]:
        await wait_for_ip(kube, namespace, name)

        async def reported(name: str = name) -> list[dict[str, Any]] | None:
            return await port_errors(kube, namespace, name)

        assert await eventually(reported, what=f"port error on {name}") == [
            {"port": port, "protocol": proto, "error": "lbctl.io/UnsupportedProtocol"}
        ]
        await warned(kube, namespace, name, "SyncLoadBalancerFailed", text)
        assert not lbvservers(simulator, namespace, name)

    # An odd but valid spelling of a service type is normalised.
    await wait_for_ip(kube, namespace, "http-padded")
    padded = f"lbctl-{namespace}_http-padded_80-tcp_lbv"
    await eventually(lambda: padded in simulator.names("lbvserver"), what="padded type")
    assert (
        next(v for v in simulator.sim.objects("lbvserver") if v["name"] == padded)["servicetype"]
        == "HTTP"
    )

    # Fifty ports: fifty vservers on one address, each with its member.
    ip = await wait_for_ip(kube, namespace, "fifty")
    await eventually(
        lambda: len(lbvservers(simulator, namespace, "fifty")) == 50, what="fifty vservers"
    )
    fifty = [
        v for v in simulator.sim.objects("lbvserver") if v["name"].startswith(f"lbctl-{namespace}_fifty_")
    ]  # fmt: skip
    assert {v["ipv46"] for v in fifty} == {ip}
    assert sorted(int(v["port"]) for v in fifty) == list(range(10_000, 10_050))
    assert await port_errors(kube, namespace, "fifty") is None

    # LoadBalancer → ClusterIP releases everything; back to LoadBalancer gets a VIP again.
    first = await wait_for_ip(kube, namespace, "flip")
    await eventually(lambda: lbvservers(simulator, namespace, "flip"), what="flip on the ADC")
    await kube.patch(SERVICES, namespace, "flip", {"spec": {"type": "ClusterIP"}})

    async def released() -> bool:
        service = await kube.get(SERVICES, namespace, "flip")
        annotations = service["metadata"].get("annotations") or {}
        return (
            "com.citrix.vip" not in annotations
            and not (service["status"].get("loadBalancer") or {}).get("ingress")
            and not service["metadata"].get("finalizers")
            and await vip_reason(kube, namespace, "flip") is None
            and not lbvservers(simulator, namespace, "flip")
        )

    await eventually(released, what="flip released as ClusterIP")
    await kube.patch(SERVICES, namespace, "flip", {"spec": {"type": "LoadBalancer"}})
    again = await wait_for_ip(kube, namespace, "flip")
    assert again.startswith("10.78.0.")
    await eventually(lambda: lbvservers(simulator, namespace, "flip"), what="flip back on ADC")
    assert first  # it had one before; whether it is the same one depends on the free list
    await no_address_twice(kube, namespace)


# -- 4. Vips edited by hand ------------------------------------------------------------------


def hand_vip(name: str, address: str, **spec: str) -> dict[str, Any]:
    return {
        "apiVersion": "ipam.citrix.com/v1",
        "kind": "Vip",
        "metadata": {"name": name},
        "spec": {"ipaddress": address, **spec},
    }


async def vip_address(kube: KubeClient, namespace: str, name: str) -> str | None:
    try:
        vip = await kube.get(VIPS, namespace, name)
    except NotFound:
        return None
    return str(vip["spec"].get("ipaddress") or "") or None


async def test_vips_edited_into_nonsense(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    await start_lbctl(RANGE)
    for name in ("good", "victim", "holder", "mover", "dropped"):
        await kube.create(SERVICES, namespace, load_balancer(name))
    ips = {
        n: await wait_for_ip(kube, namespace, n)
        for n in ("good", "victim", "holder", "mover", "dropped")
    }

    # A Vip made by hand with a garbage address: the CRD refuses it, naming the field.
    with pytest.raises(Invalid, match=r"spec\.ipaddress.*must be empty or one IPv4 or IPv6"):
        await kube.create(VIPS, namespace, hand_vip("garbage", "not-an-ip"))
    # A Vip made by hand claiming a Service's address: refused on the Vip, Service unmoved.
    await kube.create(VIPS, namespace, hand_vip("squatter", ips["holder"]))
    await warned(kube, namespace, "squatter", "AddressInUse", f"{ips['holder']} is already held")
    # A hand-made Vip named like a Service created later, for no Service in particular: the
    # prototype's way of reserving an address for it, so the Service takes that address.
    await kube.create(VIPS, namespace, hand_vip("adopted", ""))
    reserved = await eventually(
        lambda: vip_address(kube, namespace, "adopted"), what="hand Vip filled"
    )
    await kube.create(SERVICES, namespace, load_balancer("adopted"))
    assert await wait_for_ip(kube, namespace, "adopted") == reserved
    # ... but one recording another Service: the Service says so and gets nothing.
    await kube.create(VIPS, namespace, hand_vip("taken", "", service="someone-else"))
    await eventually(lambda: vip_address(kube, namespace, "taken"), what="hand Vip filled")
    await kube.create(SERVICES, namespace, load_balancer("taken"))
    await warned(kube, namespace, "taken", "VipNameConflict", "belongs to something else")
    assert shown_ip(await kube.get(SERVICES, namespace, "taken")) is None

    # A live Service's Vip edited to garbage: the CRD refuses the edit; emptied, lbctl
    # writes the held address back.
    with pytest.raises(Invalid, match=r"spec\.ipaddress"):
        await kube.patch(VIPS, namespace, "victim", {"spec": {"ipaddress": "not-an-ip"}})
    await kube.patch(VIPS, namespace, "victim", {"spec": {"ipaddress": ""}})

    async def repaired() -> bool:
        return await vip_address(kube, namespace, "victim") == ips["victim"]

    await eventually(repaired, what="victim's Vip repaired")
    # A live Service's Vip edited to another Service's address: refused, nobody moves.
    await kube.patch(VIPS, namespace, "mover", {"spec": {"ipaddress": ips["holder"]}})
    await warned(kube, namespace, "mover", "AddressConflict", f"records {ips['holder']}")
    # A live Service's Vip deleted: recreated with the same address.
    await kube.delete(VIPS, namespace, "dropped")

    async def recreated() -> bool:
        return await vip_address(kube, namespace, "dropped") == ips["dropped"]

    await eventually(recreated, what="dropped Vip recreated")
    # A live Service's Vip edited to an address outside every pool: the Vip is the record, so
    # the Service follows it, with an OutsidePools warning.
    await kube.patch(VIPS, namespace, "good", {"spec": {"ipaddress": "192.0.2.77"}})
    await warned(kube, namespace, "good", "OutsidePools", "192.0.2.77 is no longer in any")
    assert await wait_for_ip(kube, namespace, "good") == "192.0.2.77"

    for name in ("victim", "holder", "mover", "dropped"):
        assert shown_ip(await kube.get(SERVICES, namespace, name)) == ips[name], name
    await no_address_twice(kube, namespace)


# -- 5. a misbehaving ADC --------------------------------------------------------------------


async def test_services_converge_after_adc_errors_and_outage(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl,
    simulator: RunningSimulator, nodes: MakeNode,
) -> None:  # fmt: skip
    await nodes(f"{namespace}-a", "10.10.0.1")
    lbctl = await start_lbctl(RANGE, adc=simulator.settings())
    await kube.create(SERVICES, namespace, load_balancer("before"))
    await wait_for_ip(kube, namespace, "before")
    await eventually(lambda: lbvservers(simulator, namespace, "before"), what="before on ADC")

    # Every NITRO request fails with 503: VIPs still come, the ADC waits.
    simulator.sim.faults.error_rate = 1.0
    await kube.create(SERVICES, namespace, load_balancer("during-errors"))
    await wait_for_ip(kube, namespace, "during-errors")
    await warned(kube, namespace, "during-errors", "SyncLoadBalancerFailed", "not configured yet")
    assert not lbvservers(simulator, namespace, "during-errors")
    # Then the ADC vanishes altogether.
    simulator.sim.faults.error_rate = 0.0
    simulator.sim.faults.outage = True
    await kube.create(SERVICES, namespace, load_balancer("during-outage"))
    await wait_for_ip(kube, namespace, "during-outage")
    assert not lbvservers(simulator, namespace, "during-outage")
    simulator.sim.faults.outage = False

    for name in ("during-errors", "during-outage"):

        def configured(name: str = name) -> bool:
            return len(lbvservers(simulator, namespace, name)) == 1

        await eventually(configured, within=60, what=f"{name} configured once the ADC is back")
    assert lbvservers(simulator, namespace, "before")
    assert lbctl.runtime.adc is not None
    await no_address_twice(kube, namespace)
