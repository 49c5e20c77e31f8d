"""What the Service says about the NetScaler, and IPAM that never waits for it: a black-holed
NetScaler (connections accepted, never answered) and an outage that ends, on the real
apiserver with the simulator."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from lbctl.config import AdcSettings
from lbctl.kube.client import EVENTS, JSON, NODES, SERVICES, VIP_POOLS, VIPS, KubeClient
from lbctl.kube.errors import NotFound
from lbctl.nitro.client import Credentials, NitroClient
from lbctl.reconcile.adc_step import ADC_UNREACHABLE
from lbctl.reconcile.conditions import ADC_CONDITION
from tests.integration.conftest import (
    SIM_PASSWORD,
    CreatePool,
    RunningSimulator,
    StartLbctl,
    load_balancer,
    shared,
    shown_ip,
    wait_for_ip,
)
from tests.waiting import eventually

pytestmark = pytest.mark.integration

SERVICES_IN_PLACE = 200


@contextlib.asynccontextmanager
async def black_hole() -> AsyncIterator[str]:
    """A listener that accepts connections and never answers; its URL."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def adc_condition(kube: KubeClient, namespace: str, name: str) -> JSON | None:
    service = await kube.get(SERVICES, namespace, name)
    found = [c for c in (service.get("status") or {}).get("conditions") or []
             if c["type"] == ADC_CONDITION]  # fmt: skip
    return found[0] if found else None


async def reasons(kube: KubeClient, namespace: str, name: str) -> list[tuple[str, str]]:
    items, _ = await kube.list(EVENTS, namespace)
    return [(e["reason"], e["message"]) for e in items if e["involvedObject"]["name"] == name]


async def test_a_black_holed_netscaler_never_delays_an_address(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """With 200 Services in place and the NetScaler black-holed (10 s NITRO timeout), a new
    Service gets its VIP within 5 s, every Service says the NetScaler is unreachable (port
    errors and condition), none is told EnsuredLoadBalancer, and the circuit breaker keeps
    NITRO requests from piling up behind the timeout."""
    async with black_hole() as url:
        adc = AdcSettings(url=url, username="nsroot", password="x", timeout=10.0)
        running = await start_lbctl('["10.150.0.0/23"]', adc=adc)
        await asyncio.gather(*(
            kube.create(SERVICES, namespace, load_balancer(f"s{i:03}"))
            for i in range(SERVICES_IN_PLACE)
        ))  # fmt: skip
        for i in range(SERVICES_IN_PLACE):
            await wait_for_ip(kube, namespace, f"s{i:03}", within=120)
        await kube.create(SERVICES, namespace, load_balancer("new"))
        await wait_for_ip(kube, namespace, "new", within=5)

        async def told_unreachable() -> JSON | None:
            condition = await adc_condition(kube, namespace, "new")
            return condition if condition and condition["reason"] == "Unreachable" else None

        condition = await eventually(told_unreachable, within=60, what="condition Unreachable")
        assert condition["status"] == "False"
        service = await kube.get(SERVICES, namespace, "new")
        (ingress,) = service["status"]["loadBalancer"]["ingress"]
        assert ingress["ports"] == [{"port": 80, "protocol": "TCP", "error": ADC_UNREACHABLE}]
        assert "EnsuredLoadBalancer" not in [r for r, _ in await reasons(kube, namespace, "new")]
        nitro = running.runtime.nitro
        assert nitro is not None
        assert nitro.breaker.opened >= 1
        sent = sum(nitro.requests.values())
        assert sent < 50, f"{sent} NITRO requests sent to a NetScaler that never answers"


async def test_the_service_says_what_the_netscaler_did_and_when_it_recovers(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl,
    simulator: RunningSimulator, nodes: Callable[..., Awaitable[None]],
) -> None:  # fmt: skip
    """EnsuredLoadBalancer and the condition True once the NetScaler holds the configuration;
    during an outage every port says so and the condition is False/Unreachable; when it ends
    the configuration is made, the ports are clear, and a Normal Event says it recovered."""
    await nodes(f"{namespace}-a", "10.10.0.1")
    simulator.sim.faults.outage = True
    await start_lbctl('["10.151.0.0/28"]', adc=simulator.settings(timeout=1.0))
    await kube.create(SERVICES, namespace, load_balancer("web"))
    await wait_for_ip(kube, namespace, "web")

    async def condition_is(status: str, reason: str) -> JSON | None:
        found = await adc_condition(kube, namespace, "web")
        return found if found and (found["status"], found["reason"]) == (status, reason) else None

    await eventually(lambda: condition_is("False", "Unreachable"), within=30, what="Unreachable")
    assert "EnsuredLoadBalancer" not in [r for r, _ in await reasons(kube, namespace, "web")]
    simulator.sim.faults.outage = False
    await eventually(lambda: condition_is("True", "Configured"), within=60, what="Configured")
    service = await kube.get(SERVICES, namespace, "web")
    assert "ports" not in service["status"]["loadBalancer"]["ingress"][0]
    (ensured,) = [m for r, m in await reasons(kube, namespace, "web") if r == "EnsuredLoadBalancer"]
    assert ensured.startswith(
        "Configured on the NetScaler for 10.151.0.1 (recovered from Unreachable"
    )
    assert f"lbctl-{namespace}_web_80-tcp_lbv" in simulator.names("lbvserver")


async def test_a_netscaler_without_its_lb_feature_is_said_once_not_failed_on_every_add(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl,
    simulator: RunningSimulator, nodes: Callable[..., Awaitable[None]],
) -> None:  # fmt: skip
    """LB off: nothing is added (no failing add per Service), the Service says why, lbctl is
    not ready; LB on again: configured, ready."""
    await nodes(f"{namespace}-a", "10.10.0.1")
    simulator.sim.store.system.features.discard("lb")
    running = await start_lbctl('["10.152.0.0/28"]', adc=simulator.settings(resync_period=1.0))
    await kube.create(SERVICES, namespace, load_balancer("web"))
    await wait_for_ip(kube, namespace, "web")

    async def says(status: str, reason: str) -> JSON | None:
        found = await adc_condition(kube, namespace, "web")
        return found if found and (found["status"], found["reason"]) == (status, reason) else None

    told = await eventually(lambda: says("False", "LBFeatureDisabled"), what="LB disabled")
    assert "enable ns feature lb" in told["message"]
    assert not running.runtime.ready()
    assert not simulator.writes(), "adds tried on a NetScaler that cannot load-balance"
    simulator.sim.store.system.features.add("lb")
    await eventually(lambda: says("True", "Configured"), within=60, what="configured")
    assert running.runtime.ready()


async def test_changes_are_saved_on_the_netscaler_when_asked_coalesced(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl,
    simulator: RunningSimulator, nodes: Callable[..., Awaitable[None]],
) -> None:  # fmt: skip
    """--netscaler-save-config: lbctl's changes end up saved (nsconfig configchanged false),
    a burst of writes in one save or two, not one per write."""
    await nodes(f"{namespace}-a", "10.10.0.1")
    store = simulator.sim.store
    await start_lbctl('["10.153.0.0/28"]', adc=simulator.settings(save_config=True,
                                                                   save_interval=1.0))  # fmt: skip
    for name in ("a", "b", "c"):
        await kube.create(SERVICES, namespace, load_balancer(name))
    for name in ("a", "b", "c"):
        await wait_for_ip(kube, namespace, name)
    await eventually(lambda: store.saves >= 1 and not store.changed, what="configuration saved")
    writes = len(simulator.writes()) - store.saves
    assert store.saves <= 3 < writes, (store.saves, writes)


async def test_the_service_shows_what_the_netscaler_sees_of_its_members(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl,
    simulator: RunningSimulator, nodes: Callable[..., Awaitable[None]],
) -> None:  # fmt: skip
    """The lb vservers' state and members UP are read for all vservers in two requests per
    pass (their count, a page of up to 1,000); while all is UP the Service's condition says
    only what is served (health passes write nothing); a vserver going DOWN (no member
    passes its monitor) is in the message and a Warning Event."""
    await nodes(f"{namespace}-a", "10.10.0.1")
    await nodes(f"{namespace}-b", "10.10.0.2")
    running = await start_lbctl('["10.154.0.0/28"]', adc=simulator.settings(health_period=0.5))
    await kube.create(SERVICES, namespace, load_balancer("web"))
    address = await wait_for_ip(kube, namespace, "web")
    base = f"lbctl-{namespace}_web_80-tcp"

    async def message_is(text: str) -> JSON | None:
        found = await adc_condition(kube, namespace, "web")
        return found if found and found["message"] == text else None

    await eventually(lambda: message_is(f"the NetScaler serves {address}"), within=30)
    nitro, health = running.runtime.nitro, running.runtime.health
    assert nitro is not None
    assert health is not None
    await eventually(lambda: health.passes > 0, what="a health pass")
    passes, reads = health.passes, nitro.requests[("lbvserver", "GET")]
    status_writes = running.runtime.client.calls[("services/status", "patch")]
    await eventually(lambda: health.passes >= passes + 2, what="two more passes")
    read = nitro.requests[("lbvserver", "GET")] - reads
    assert read == 2 * (health.passes - passes)  # a count and a page each
    assert running.runtime.client.calls[("services/status", "patch")] == status_writes

    assert simulator.sim.set_probe("DOWN", {"servicegroupname": f"{base}_sgp"}) == 2
    down = f"the NetScaler serves {address}; lb vserver {base}_lbv DOWN, 0/2 members UP"
    told = await eventually(lambda: message_is(down), within=30)
    assert told["status"] == "True", "configured, if unable to reach a member"
    warnings = [m for r, m in await reasons(kube, namespace, "web") if r == "LoadBalancerDown"]
    assert warnings == [f"the NetScaler cannot reach the Service: lb vserver {base}_lbv DOWN, "
                        "0/2 members UP"]  # fmt: skip


async def test_health_passes_never_judge_a_service_whose_objects_are_being_written(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl,
    simulator: RunningSimulator, nodes: Callable[..., Awaitable[None]],
) -> None:  # fmt: skip
    """Health passes every 20 ms while each NITRO request takes 30 ms: a new lb vserver
    read before its members are bound is DOWN to the NetScaler, but that is configuration
    under way, not a Service going DOWN: no LoadBalancerDown Warning, and each Service's
    status is written twice (its address, then NetScalerConfigured), nothing more."""
    await nodes(f"{namespace}-a", "10.10.0.1")
    running = await start_lbctl('["10.156.0.0/28"]', adc=simulator.settings(health_period=0.02))
    health = running.runtime.health
    assert health is not None
    simulator.sim.faults.latency = 0.03
    names = [f"s{i}" for i in range(6)]
    for name in names:
        await kube.create(SERVICES, namespace, load_balancer(name))

    async def all_served() -> bool:
        found = [await adc_condition(kube, namespace, name) for name in names]
        return all(c is not None and c["message"].startswith("the NetScaler serves") and
                   ";" not in c["message"] for c in found)  # fmt: skip

    await eventually(all_served, within=60, what="every Service served, with no health note")
    passes = health.passes
    await eventually(lambda: health.passes >= passes + 3, what="three more passes")
    for name in names:
        assert [r for r, _ in await reasons(kube, namespace, name) if r == "LoadBalancerDown"] == []
    assert running.runtime.client.calls[("services/status", "patch")] == 2 * len(names)


async def test_a_service_deleted_while_its_netscaler_writes_are_under_way_leaves_nothing(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl,
    simulator: RunningSimulator, nodes: Callable[..., Awaitable[None]],
) -> None:  # fmt: skip
    """Removal (the Service's queue) waits for a configuration under way (the ADC's queue)
    and then removes all of it: nothing is left to hold the VIP on the NetScaler, and the
    next Service given that VIP is configured."""
    await nodes(f"{namespace}-a", "10.10.0.1")
    running = await start_lbctl('["10.155.0.0/30"]', adc=simulator.settings())
    nitro = running.runtime.nitro
    assert nitro is not None
    reached, release = asyncio.Event(), asyncio.Event()
    original = nitro.add

    async def gated_add(resource: str, obj: JSON, *, idempotent: bool = False) -> None:
        if resource == "lbvserver" and not release.is_set():
            reached.set()
            await release.wait()
        await original(resource, obj, idempotent=idempotent)

    nitro.add = gated_add  # type: ignore[method-assign]
    await kube.create(SERVICES, namespace, load_balancer("web"))
    ip = await wait_for_ip(kube, namespace, "web")
    await eventually(reached.is_set, what="the lb vserver add under way")
    await kube.delete(SERVICES, namespace, "web")

    async def gone() -> bool:
        items, _ = await kube.list(SERVICES, namespace)
        return not items

    with contextlib.suppress(AssertionError):  # before the fix, removal did not wait
        await eventually(gone, within=3, what="removed meanwhile")
    release.set()
    await eventually(gone, what="the Service gone")
    queues = [q for q in (running.runtime.queue, running.runtime.adc_queue) if q is not None]

    def idle() -> bool:
        return all(len(q) == 0 and q.processing == 0 for q in queues)

    await eventually(idle, what="both queues idle")
    assert [v["name"] for v in simulator.sim.objects("lbvserver") if v["ipv46"] == ip] == []
    await kube.create(SERVICES, namespace, load_balancer("next"))
    assert await wait_for_ip(kube, namespace, "next") == ip

    async def configured() -> bool:
        found = await adc_condition(kube, namespace, "next")
        return found is not None and found["status"] == "True"

    await eventually(configured, what="the next Service configured on that VIP")


async def test_after_a_long_outage_services_are_configured_as_soon_as_it_answers(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl,
    simulator: RunningSimulator, nodes: Callable[..., Awaitable[None]],
) -> None:  # fmt: skip
    """An outage long enough for the Service's ADC key to back off ~10 s between tries: when
    the NetScaler answers again the breaker closes and every Service is tried at once; all
    the while one Warning Event (counted), not one per try with changing words."""
    await nodes(f"{namespace}-a", "10.10.0.1")
    simulator.sim.faults.outage = True
    running = await start_lbctl('["10.156.0.0/28"]', adc=simulator.settings(timeout=1.0))
    await kube.create(SERVICES, namespace, load_balancer("web"))
    await wait_for_ip(kube, namespace, "web")
    queue = running.runtime.adc_queue
    assert queue is not None
    await eventually(
        lambda: queue.limiter.failures(f"Adc:{namespace}/web") >= 11, within=60, what="backoff"
    )
    simulator.sim.faults.outage = False

    async def configured() -> bool:
        found = await adc_condition(kube, namespace, "web")
        return found is not None and found["status"] == "True"

    await eventually(configured, within=8, what="configured soon after the outage")
    failed = [m for r, m in await reasons(kube, namespace, "web") if r == "SyncLoadBalancerFailed"]
    assert len(failed) == 1, failed


async def test_a_service_that_moves_is_told_when_the_netscaler_serves_its_new_address(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl,
    simulator: RunningSimulator, nodes: Callable[..., Awaitable[None]],
) -> None:  # fmt: skip
    await nodes(f"{namespace}-a", "10.10.0.1")
    await start_lbctl('[{"prod": ["10.157.0.1"]}, {"dev": ["10.157.1.1"]}]',
                      adc=simulator.settings())  # fmt: skip
    service = load_balancer("web")
    service["metadata"]["annotations"] = {"service.citrix.com/ipam-range": "prod"}
    await kube.create(SERVICES, namespace, service)
    await wait_for_ip(kube, namespace, "web")

    async def ensured() -> list[str]:
        return [m for r, m in await reasons(kube, namespace, "web") if r == "EnsuredLoadBalancer"]

    await eventually(ensured, what="configured for 10.157.0.1")
    await kube.patch(SERVICES, namespace, "web", {"metadata": {"annotations": {
        "service.citrix.com/ipam-range": "dev"}}})  # fmt: skip

    async def both() -> list[str] | None:
        found = await ensured()
        return found if len(found) == 2 else None

    assert sorted(await eventually(both, what="configured for 10.157.1.1")) == [
        "Configured on the NetScaler for 10.157.0.1",
        "Configured on the NetScaler for 10.157.1.1",
    ]
    condition = await adc_condition(kube, namespace, "web")
    assert condition is not None
    assert condition["message"].startswith("the NetScaler serves 10.157.1.1")


async def test_a_sharer_that_lets_go_of_its_address_leaves_nothing_on_the_netscaler(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl,
    simulator: RunningSimulator, nodes: Callable[..., Awaitable[None]],
) -> None:  # fmt: skip
    """web (TCP 80) and dns (UDP 53) share the one address; dns is edited to TCP 80 and, with
    nowhere to go, waits showing nothing: its lb vserver (53) goes too, web's stays, and no
    add of dns is refused by the NetScaler."""
    await nodes(f"{namespace}-a", "10.10.0.1")
    await start_lbctl('["10.159.0.1"]', adc=simulator.settings())
    await kube.create(SERVICES, namespace, shared("web", "blue", ("TCP", 80)))
    await kube.create(SERVICES, namespace, shared("dns", "blue", ("UDP", 53)))
    address = await wait_for_ip(kube, namespace, "web")
    assert await wait_for_ip(kube, namespace, "dns") == address
    dns_lbv = f"lbctl-{namespace}_dns_53-udp_lbv"
    await eventually(lambda: dns_lbv in simulator.names("lbvserver"), what="dns configured")
    tcp_80 = [{"name": "dns", "protocol": "TCP", "port": 80, "targetPort": 80}]
    await kube.patch(SERVICES, namespace, "dns", {"spec": {"ports": tcp_80}})
    await eventually(lambda: dns_lbv not in simulator.names("lbvserver"), what="dns removed")
    assert f"lbctl-{namespace}_web_80-tcp_lbv" in simulator.names("lbvserver")
    assert not [n for n in simulator.names("lbvserver") if n.startswith(f"lbctl-{namespace}_dns")]
    refused = [r for r in simulator.sim.requests if r.resource == "lbvserver" and r.status >= 300]
    assert refused == []


async def test_a_server_made_by_hand_after_lbctl_read_the_adc_is_never_taken_over(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl,
    simulator: RunningSimulator, nodes: Callable[..., Awaitable[None]],
) -> None:  # fmt: skip
    """An admin makes server 10.10.0.9 after lbctl's listing; a node with that IP joins and
    leaves: lbctl binds and unbinds it, but never comments nor deletes the admin's server."""
    await nodes(f"{namespace}-a", "10.10.0.1")
    running = await start_lbctl('["10.160.0.0/28"]', adc=simulator.settings(resync_period=1.0))
    await kube.create(SERVICES, namespace, load_balancer("web"))
    await wait_for_ip(kube, namespace, "web")
    group = f"lbctl-{namespace}_web_80-tcp_sgp"
    await eventually(lambda: group in simulator.names("servicegroup"), what="configured")
    adc = running.runtime.adc
    assert adc is not None
    passes = adc.passes
    await eventually(lambda: adc.passes > passes, what="a listing read")
    admin = NitroClient(simulator.url, Credentials("nsroot", SIM_PASSWORD))
    try:
        made = {"name": "10.10.0.9", "ipaddress": "10.10.0.9", "comment": "backup, by hand"}
        await admin.add("server", made)
    finally:
        await admin.aclose()
    await nodes(f"{namespace}-b", "10.10.0.9")

    def bound() -> bool:
        members = simulator.sim.objects("servicegroup_servicegroupmember_binding")
        return any(m["servicegroupname"] == group and "10.10.0.9" in (m.get("ip"), m.get(
            "servername")) for m in members)  # fmt: skip

    await eventually(bound, what="the new node bound")
    await kube.delete(NODES, None, f"{namespace}-b")
    await eventually(lambda: not bound(), what="the node unbound")
    passes = adc.passes
    await eventually(lambda: adc.passes >= passes + 2, what="two more listings")
    (kept,) = [s for s in simulator.sim.objects("server") if s["name"] == "10.10.0.9"]
    assert kept["comment"] == "backup, by hand"


async def test_a_status_cleared_by_someone_else_never_takes_the_vserver_down(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl,
    simulator: RunningSimulator, nodes: Callable[..., Awaitable[None]],
) -> None:  # fmt: skip
    """Someone clears the Service's status: lbctl shows its address again, and deletes
    nothing on the NetScaler meanwhile (the address was never let go)."""
    await nodes(f"{namespace}-a", "10.10.0.1")
    running = await start_lbctl('["10.161.0.0/28"]', adc=simulator.settings())
    await kube.create(SERVICES, namespace, load_balancer("web"))
    address = await wait_for_ip(kube, namespace, "web")
    lbv = f"lbctl-{namespace}_web_80-tcp_lbv"
    await eventually(lambda: lbv in simulator.names("lbvserver"), what="configured")
    simulator.sim.reset_counts()
    cleared = {"status": {"loadBalancer": {"ingress": None}}}
    await kube.patch(SERVICES, namespace, "web", cleared, subresource="status")
    assert await wait_for_ip(kube, namespace, "web") == address
    queues = [q for q in (running.runtime.queue, running.runtime.adc_queue) if q is not None]

    def idle() -> bool:
        return all(len(q) == 0 and q.processing == 0 for q in queues)

    await eventually(idle, what="both queues idle")
    assert [r for r in simulator.writes() if r.method == "DELETE"] == []


async def test_a_vip_deleted_by_hand_never_takes_the_vserver_down(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl, vip_pools: CreatePool,
    simulator: RunningSimulator, nodes: Callable[..., Awaitable[None]],
) -> None:  # fmt: skip
    """web's address is kept while in use after its VipPool is deleted; then its Vip is
    deleted by hand.  With no pool to hold the address in again, web waits showing it, and
    the NetScaler keeps serving it through drift passes; once the pool is back, web holds
    it again.  Nothing is deleted on the NetScaler."""
    await nodes(f"{namespace}-a", "10.10.0.1")
    running = await start_lbctl("[]", adc=simulator.settings(resync_period=1.0))
    pool = f"{namespace}-kept"
    await vip_pools(pool, ["10.162.0.1"])
    await kube.create(SERVICES, namespace, load_balancer("web"))
    address = await wait_for_ip(kube, namespace, "web")
    lbv = f"lbctl-{namespace}_web_80-tcp_lbv"
    await eventually(lambda: lbv in simulator.names("lbvserver"), what="configured")
    await kube.delete(VIP_POOLS, None, pool)

    async def vip_says(reason: str) -> bool:
        with contextlib.suppress(NotFound):
            vip = await kube.get(VIPS, namespace, "web")
            return bool(((vip.get("status") or {}).get("conditions") or [{}])[0].get("reason")
                        == reason)  # fmt: skip
        return False

    await eventually(lambda: vip_says("OutsidePools"), what="kept outside")
    simulator.sim.reset_counts()
    await kube.delete(VIPS, namespace, "web")
    await eventually(lambda: vip_says("NoEligiblePool"), what="web waits")
    adc = running.runtime.adc
    assert adc is not None
    passes = adc.passes
    await eventually(lambda: adc.passes >= passes + 2, what="two drift passes")
    queue = running.runtime.adc_queue
    assert queue is not None
    await eventually(lambda: len(queue) == 0 and queue.processing == 0, what="ADC queue idle")
    assert shown_ip(await kube.get(SERVICES, namespace, "web")) == address
    assert lbv in simulator.names("lbvserver")
    await vip_pools(pool, ["10.162.0.1"])
    await eventually(lambda: vip_says("Allocated"), what="held again")
    assert (await kube.get(VIPS, namespace, "web"))["spec"]["ipaddress"] == address
    assert [r for r in simulator.writes() if r.method == "DELETE"] == []
