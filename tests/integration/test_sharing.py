"""Addresses shared under ``lbctl.io/allow-shared-ip``: who may show one, and what happens
when a user's edit (a key, ports, a hand-deleted Vip or record) makes sharers conflict.

Each test watches every instant (``ShownAddresses``), not only the end state.
"""

from __future__ import annotations

import contextlib

import pytest

from lbctl import app
from lbctl.config import Settings
from lbctl.devenv.controlplane import LocalControlPlane
from lbctl.ipam.ranges import parse_vip_range
from lbctl.kube.client import EVENTS, SERVICES, VIP_ADDRESSES, VIPS, KubeClient, api_client_from
from lbctl.kube.errors import NotFound
from tests.integration.conftest import StartLbctl, load_balancer, shared, shown_ip, wait_for_ip
from tests.integration.invariants import ShownAddresses, leaks_after
from tests.integration.test_uniqueness import vip_state
from tests.waiting import eventually

pytestmark = pytest.mark.integration

FRONTEND_IP = "service.citrix.com/frontend-ip"
TCP_80 = [{"name": "web", "protocol": "TCP", "port": 80, "targetPort": 80}]


async def test_a_sharer_is_not_offered_an_address_whose_record_is_being_deleted(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """The shared address's record deleted by hand stays Terminating while web shows it, and
    admits no new holder: a new sharer of the key gets a Vip and an address of its own (it
    used to be offered the Terminating address, refused by the record, and retried every
    half second without ever getting a Vip); web keeps its address; a sharer whose port
    dns uses, with no address left, waits visibly, with a Pending Vip."""
    await start_lbctl('["10.77.9.60/31"]')
    await kube.create(SERVICES, namespace, shared("web", "blue", ("TCP", 80)))
    first = await wait_for_ip(kube, namespace, "web")
    await kube.delete(VIP_ADDRESSES, None, first)
    assert (await kube.get(VIP_ADDRESSES, None, first))["metadata"]["deletionTimestamp"]
    async with ShownAddresses(kube, namespace) as watch:
        await kube.create(SERVICES, namespace, shared("dns", "blue", ("UDP", 53)))
        second = await wait_for_ip(kube, namespace, "dns")
        assert second != first
        await kube.create(SERVICES, namespace, shared("ntp", "blue", ("UDP", 53)))
        await eventually(lambda: vip_state(kube, namespace, "ntp"), what="ntp's Vip")
        assert await vip_state(kube, namespace, "ntp") == "Pending"
        assert shown_ip(await kube.get(SERVICES, namespace, "ntp")) is None
        assert shown_ip(await kube.get(SERVICES, namespace, "web")) == first
        record = await kube.get(VIP_ADDRESSES, None, first)
        assert [h["name"] for h in record["spec"]["holders"]] == ["web"]
    assert not watch.violations, watch.violations


async def test_a_sharer_whose_key_changes_leaves_the_shared_address(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """Two Services share one address under key blue; one changes its key to green: it moves
    to an address of its own (as MetalLB reassigns it), the other keeps the address, and the
    shared record no longer names the one that left."""
    await start_lbctl('["10.77.9.40/30"]')
    await kube.create(SERVICES, namespace, shared("web", "blue", ("TCP", 80)))
    await kube.create(SERVICES, namespace, shared("dns", "blue", ("UDP", 53)))
    first = await wait_for_ip(kube, namespace, "web")
    assert await wait_for_ip(kube, namespace, "dns") == first
    async with ShownAddresses(kube, namespace) as watch:
        patch = {"metadata": {"annotations": {"lbctl.io/allow-shared-ip": "green"}}}
        await kube.patch(SERVICES, namespace, "dns", patch)

        await dns_left_web(kube, namespace, first)
    assert (await kube.get(VIPS, namespace, "dns"))["spec"]["sharingKey"] == "green"
    assert not watch.violations, watch.violations


async def dns_left_web(kube: KubeClient, namespace: str, first: str) -> str:
    """Wait until dns shows an address other than ``first`` (which web keeps) and the
    records say so; dns's new address."""

    async def moved() -> str | None:
        ip = shown_ip(await kube.get(SERVICES, namespace, "dns"))
        return ip if ip not in (None, first) else None

    second = await eventually(moved, what="dns moved off the shared address")
    assert shown_ip(await kube.get(SERVICES, namespace, "web")) == first

    async def only_web_on_first() -> bool:
        record = await kube.get(VIP_ADDRESSES, None, first)
        return [h["name"] for h in record["spec"]["holders"]] == ["web"]

    await eventually(only_web_on_first, what="the shared record names web only")
    record = await kube.get(VIP_ADDRESSES, None, second)
    assert [h["name"] for h in record["spec"]["holders"]] == ["dns"]
    return second


async def test_a_sharer_edited_a_moment_ago_is_read_again_before_its_address_is_shown(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl, control_plane: LocalControlPlane
) -> None:
    """web shows an address shared under key blue (port 80); dns (blue, port 443) is about
    to join it when a user gives web port 443 too.  lbctl's cache has not seen the edit yet
    (its Service informer is driven by hand here, so it trails as a slow watch would): the
    join passes the record's check, but the quorum read of web before showing refuses it."""
    running = await start_lbctl('["10.77.9.44/30"]')
    await kube.create(SERVICES, namespace, shared("web", "blue", ("TCP", 80)))
    first = await wait_for_ip(kube, namespace, "web")
    await running.stop()
    await kube.create(SERVICES, namespace, shared("dns", "blue", ("TCP", 443)))

    client = KubeClient(await api_client_from(str(control_plane.kubeconfig)))
    try:
        settings = Settings(
            pools=parse_vip_range('["10.77.9.44/30"]'), kubeconfig=str(control_plane.kubeconfig)
        )
        runtime = app.build(settings, client)
        for informer in (runtime.services, runtime.vips, runtime.address_records):
            await informer.relist()
        web_ports = [{"name": "both", "protocol": "TCP", "port": 443, "targetPort": 443}]
        async with ShownAddresses(kube, namespace) as watch:
            await kube.patch(SERVICES, namespace, "web", {"spec": {"ports": web_ports}})
            await runtime.service_reconciler.reconcile(f"{namespace}/dns")
            dns = await kube.get(SERVICES, namespace, "dns")
        assert shown_ip(dns) != first, "dns shows the address web shows on the same port"
        assert not watch.violations, watch.violations
        assert shown_ip(await kube.get(SERVICES, namespace, "web")) == first
    finally:
        await client.close()


@pytest.mark.parametrize("dns_class", [None, "lbctl.io/x"])
async def test_a_sharer_whose_ports_now_clash_moves_to_an_address_where_they_fit(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl, dns_class: str | None
) -> None:
    """web (TCP 80) and dns (UDP 53) share one address under key blue; dns is edited to use
    TCP 80 too.  dns moves to an address where its ports fit (as MetalLB reassigns it) and
    web keeps the shared one.  With dns of another instance (class x), the clash is known
    only from the address record, which names every instance's sharers."""
    pool = '["10.77.9.48/29"]'
    await start_lbctl(pool)
    if dns_class is not None:
        await start_lbctl(pool, load_balancer_class=dns_class)
    await kube.create(SERVICES, namespace, shared("web", "blue", ("TCP", 80)))
    first = await wait_for_ip(kube, namespace, "web")
    dns = shared("dns", "blue", ("UDP", 53))
    if dns_class is not None:
        dns["spec"]["loadBalancerClass"] = dns_class
    await kube.create(SERVICES, namespace, dns)
    assert await wait_for_ip(kube, namespace, "dns") == first
    async with ShownAddresses(kube, namespace) as watch:
        ports = [{"name": "web", "protocol": "TCP", "port": 80, "targetPort": 80}]
        await kube.patch(SERVICES, namespace, "dns", {"spec": {"ports": ports}})

        await dns_left_web(kube, namespace, first)
    assert (await kube.get(VIPS, namespace, "dns"))["spec"]["ports"] == ["TCP/80"]
    assert not watch.violations, watch.violations


WEB = ("web", ("TCP", 80))
DNS = ("dns", ("UDP", 53))


async def shared_then_stopped(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl, pool: str,
    *sharers: tuple[str, tuple[str, int]],
) -> str:  # fmt: skip
    """``sharers`` (name, port) created in this order, sharing one address under key blue,
    then lbctl stopped; the address."""
    running = await start_lbctl(pool)
    shown: list[str] = []
    for name, port in sharers:
        await kube.create(SERVICES, namespace, shared(name, "blue", port))
        shown.append(await wait_for_ip(kube, namespace, name))
    assert len(set(shown)) == 1, shown
    await running.stop()
    return shown[0]


async def test_a_sharer_whose_vip_is_lost_and_whose_ports_now_clash_moves_off(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """As above, with dns's Vip deleted while lbctl is down: dns, which shows the shared
    address but has no Vip, cannot hold it again beside web, and its key's only address
    clashes with its ports; it moves to an address of its own (it showed the shared one
    beside web for ever, waiting for a sharer's address to free up)."""
    pool = '["10.77.9.48/29"]'
    first = await shared_then_stopped(kube, namespace, start_lbctl, pool, WEB, DNS)
    async with ShownAddresses(kube, namespace) as watch:
        await kube.delete(VIPS, namespace, "dns")
        ports = [{"name": "web", "protocol": "TCP", "port": 80, "targetPort": 80}]
        await kube.patch(SERVICES, namespace, "dns", {"spec": {"ports": ports}})
        await start_lbctl(pool)

        await dns_left_web(kube, namespace, first)
    assert (await kube.get(VIPS, namespace, "dns"))["spec"]["ports"] == ["TCP/80"]
    assert not watch.violations, watch.violations


async def test_a_requesting_sharer_whose_vip_is_lost_and_whose_ports_now_clash_lets_go(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """As above, with dns asking for the shared address (``frontend-ip``): it may not move,
    so it stops showing the address (Pending, with a Warning) while web keeps it; it showed
    it beside web for ever, waiting for web to let go."""
    pool = '["10.77.9.48/29"]'
    first_lbctl = await start_lbctl(pool)
    await kube.create(SERVICES, namespace, shared("web", "blue", ("TCP", 80)))
    first = await wait_for_ip(kube, namespace, "web")
    dns = shared("dns", "blue", ("UDP", 53))
    dns["metadata"]["annotations"][FRONTEND_IP] = first
    await kube.create(SERVICES, namespace, dns)
    assert await wait_for_ip(kube, namespace, "dns") == first
    await first_lbctl.stop()
    async with ShownAddresses(kube, namespace) as watch:
        await kube.delete(VIPS, namespace, "dns")
        await kube.patch(SERVICES, namespace, "dns", {"spec": {"ports": TCP_80}})
        await start_lbctl(pool)

        async def withdrawn() -> bool:
            dns = await kube.get(SERVICES, namespace, "dns")
            return shown_ip(dns) is None and "com.citrix.vip" not in dns["metadata"]["annotations"]

        await eventually(withdrawn, what="dns stops showing the address web holds")
        assert shown_ip(await kube.get(SERVICES, namespace, "web")) == first
        assert await vip_state(kube, namespace, "dns") == "Pending"
    assert not watch.violations, watch.violations


async def web_and_classed_api(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl, pool: str
) -> str:
    """web (class-less, TCP 80) and api (class x, TCP 443) sharing one address under key
    blue, then class x's instance stopped; the address."""
    await start_lbctl(pool)
    classed = await start_lbctl(pool, load_balancer_class="lbctl.io/x")
    await kube.create(SERVICES, namespace, shared("web", "blue", ("TCP", 80)))
    first = await wait_for_ip(kube, namespace, "web")
    api = shared("api", "blue", ("TCP", 443))
    api["spec"]["loadBalancerClass"] = "lbctl.io/x"
    await kube.create(SERVICES, namespace, api)
    assert await wait_for_ip(kube, namespace, "api") == first
    await classed.stop()
    return first


async def test_an_address_whose_showers_conflict_is_not_joined_until_they_no_longer_do(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """web (TCP 80) and api (TCP 443, of class x) share an address under key blue; api is
    edited to TCP 80 while class x's instance is down.  dns (UDP 53, blue) fits beside each
    of them, but joining would show the address on a set that may not share it: dns waits
    (a Warning says why) until x's instance moves api off, then joins."""
    pool = '["10.77.9.56/29"]'
    first = await web_and_classed_api(kube, namespace, start_lbctl, pool)
    async with ShownAddresses(kube, namespace) as watch:
        await kube.patch(SERVICES, namespace, "api", {"spec": {"ports": TCP_80}})
        await kube.create(SERVICES, namespace, shared("dns", "blue", ("UDP", 53)))

        async def told_why() -> bool:
            events = (await kube.list(EVENTS, namespace))[0]
            return any(e["involvedObject"]["name"] == "dns" and e["reason"] == "AddressInUse"
                       for e in events)  # fmt: skip

        await eventually(told_why, what="dns told why it waits")
        assert shown_ip(await kube.get(SERVICES, namespace, "dns")) is None
        await start_lbctl(pool, load_balancer_class="lbctl.io/x")

        async def api_moved() -> bool:
            return shown_ip(await kube.get(SERVICES, namespace, "api")) not in (None, first)

        await eventually(api_moved, what="api moved off the shared address")
        assert await wait_for_ip(kube, namespace, "dns") == first
        assert shown_ip(await kube.get(SERVICES, namespace, "web")) == first
    assert not watch.violations, watch.violations


async def test_a_sharer_whose_key_changed_leaves_even_while_its_partner_has_no_vip(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """dns (UDP 53) and web (TCP 80) share an address under key blue; while lbctl is down
    web's Vip is deleted and dns's key becomes green.  dns, reconciled first, must see web
    as a sharer from the address's record (web holds nothing in the index yet) and leave:
    it stayed, and web took the address back under blue beside it."""
    pool = '["10.77.10.0/29"]'
    first = await shared_then_stopped(kube, namespace, start_lbctl, pool, DNS, WEB)
    async with ShownAddresses(kube, namespace) as watch:
        await kube.delete(VIPS, namespace, "web")
        patch = {"metadata": {"annotations": {"lbctl.io/allow-shared-ip": "green"}}}
        await kube.patch(SERVICES, namespace, "dns", patch)
        await start_lbctl(pool, workers=1)  # dns, listed first, is reconciled first
        await dns_left_web(kube, namespace, first)

        async def web_vip_back() -> bool:
            with contextlib.suppress(NotFound):
                return bool((await kube.get(VIPS, namespace, "web"))["spec"]["ipaddress"] == first)
            return False

        await eventually(web_vip_back, what="web's Vip again, with its address")
    assert not watch.violations, watch.violations


@pytest.mark.parametrize("new_key", ["green", None])
async def test_a_lone_sharer_whose_key_changes_keeps_its_address_under_the_new_key(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl, new_key: str | None
) -> None:
    """web alone holds its address under key blue; the key becomes green (or is removed).
    It keeps the address, and its Vip and the address's record say the new key: a new
    Service of key green joins it, one of key blue does not (blue's sharers joined web's
    address although web no longer shared it, and waited for ever to show it)."""
    await start_lbctl('["10.77.16.0/29"]')
    await kube.create(SERVICES, namespace, shared("web", "blue", ("TCP", 80)))
    first = await wait_for_ip(kube, namespace, "web")
    patch = {"metadata": {"annotations": {"lbctl.io/allow-shared-ip": new_key}}}
    async with ShownAddresses(kube, namespace) as watch:
        await kube.patch(SERVICES, namespace, "web", patch)

        async def rekeyed() -> bool:
            record = await kube.get(VIP_ADDRESSES, None, first)
            vip = await kube.get(VIPS, namespace, "web")
            wanted = f"{namespace}/{new_key}" if new_key else None
            return (record["spec"].get("sharingKey"), vip["spec"].get("sharingKey")) == (
                wanted, new_key,
            )  # fmt: skip

        await eventually(rekeyed, what="the record and the Vip say web's new key")
        await kube.create(SERVICES, namespace, shared("old", "blue", ("UDP", 53)))
        assert await wait_for_ip(kube, namespace, "old") != first
        if new_key is not None:
            await kube.create(SERVICES, namespace, shared("new", new_key, ("UDP", 53)))
            assert await wait_for_ip(kube, namespace, "new") == first
        assert shown_ip(await kube.get(SERVICES, namespace, "web")) == first
    assert not watch.violations, watch.violations


async def test_a_sharer_is_not_offered_an_address_a_service_outside_its_record_shows(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """web (blue, TCP 80) shows X; a ClusterIP Service carries a copy of web's
    ``com.citrix.vip``.  A new sharer of key blue could never show X beside it: it gets an
    address of its own (it joined X's record, got a Vip saying X, and waited for ever)."""
    await start_lbctl('["10.77.13.0/29"]')
    await kube.create(SERVICES, namespace, shared("web", "blue", ("TCP", 80)))
    first = await wait_for_ip(kube, namespace, "web")
    copy = load_balancer("copy")
    copy["metadata"]["annotations"] = {"com.citrix.vip": first}
    copy["spec"]["type"] = "ClusterIP"
    await kube.create(SERVICES, namespace, copy)
    await kube.create(SERVICES, namespace, shared("dns", "blue", ("UDP", 53)))
    assert await wait_for_ip(kube, namespace, "dns") != first
    assert shown_ip(await kube.get(SERVICES, namespace, "web")) == first
    assert not await leaks_after(kube, namespace, within=15)


async def test_a_sharer_clashing_with_another_instances_sharer_waits_visibly(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """web (class-less, TCP 80) and api (class x, TCP 443) share X under key blue; api's Vip
    is deleted while x's instance is down, so only X's record knows api's ports.  A new
    sharer dns (blue, TCP 443) is refused by those ports at once and waits with a Pending
    Vip saying why (it was offered X, refused by the record, and offered it again twice a
    second, for ever, without a Vip)."""
    await web_and_classed_api(kube, namespace, start_lbctl, '["10.77.17.0/29"]')
    await kube.delete(VIPS, namespace, "api")
    await kube.create(SERVICES, namespace, shared("dns", "blue", ("TCP", 443)))

    async def pending_why() -> str | None:
        with contextlib.suppress(NotFound):
            status = (await kube.get(VIPS, namespace, "dns")).get("status") or {}
            return str((status.get("conditions") or [{}])[0].get("reason") or "") or None
        return None

    assert await eventually(pending_why, what="dns's Vip says why it waits") == "PortConflict"
    assert shown_ip(await kube.get(SERVICES, namespace, "dns")) is None


async def test_a_sharer_whose_ports_now_clash_with_no_other_address_lets_go_and_comes_back(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """One-address pool: web (TCP 80) and dns (UDP 53) share it; dns is edited to TCP 80.
    No other address fits, so dns stops showing it (Pending, PortConflict) rather than show
    it beside web on the same port (it kept it, and the ADC refused its port); once its
    ports fit again it shares the address again."""
    await start_lbctl('["10.77.9.99"]')
    await kube.create(SERVICES, namespace, shared("web", "blue", ("TCP", 80)))
    first = await wait_for_ip(kube, namespace, "web")
    await kube.create(SERVICES, namespace, shared("dns", "blue", ("UDP", 53)))
    assert await wait_for_ip(kube, namespace, "dns") == first
    async with ShownAddresses(kube, namespace) as watch:
        await kube.patch(SERVICES, namespace, "dns", {"spec": {"ports": TCP_80}})

        async def withdrawn() -> bool:
            return shown_ip(await kube.get(SERVICES, namespace, "dns")) is None

        await eventually(withdrawn, what="dns stops showing the address")
        assert await vip_state(kube, namespace, "dns") == "Pending"
        assert shown_ip(await kube.get(SERVICES, namespace, "web")) == first
        udp = [{"name": "dns", "protocol": "UDP", "port": 53, "targetPort": 53}]
        await kube.patch(SERVICES, namespace, "dns", {"spec": {"ports": udp}})
        assert await wait_for_ip(kube, namespace, "dns") == first
    assert not watch.violations, watch.violations
