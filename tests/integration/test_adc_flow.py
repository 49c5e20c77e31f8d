"""End to end: Services on the real apiserver become NetScaler config on the simulator."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import pytest

from lbctl.kube.client import EVENTS, SERVICES, KubeClient
from lbctl.kube.errors import Conflict, NotFound
from lbctl.kube.events import EventRecorder
from lbctl.model import ServiceView
from lbctl.nitro.client import Credentials, NitroClient
from lbctl.reconcile.adc import AdcOutcome
from lbctl.reconcile.adc_step import AdcStep
from lbctl.reconcile.conditions import ADC_CONDITION
from tests.integration.conftest import (
    SIM_PASSWORD,
    RunningSimulator,
    StartLbctl,
    load_balancer,
    set_node,
    shown_ip,
    wait_for_ip,
)
from tests.peer_check_netscaler import CRITICAL, OK, check_netscaler
from tests.waiting import eventually

MakeNode = Callable[..., Awaitable[None]]


def members(sim: RunningSimulator, group: str) -> set[tuple[str, int]]:
    return {
        (str(m["ip"]), int(m["port"]))
        for m in sim.sim.objects("servicegroup_servicegroupmember_binding")
        if m["servicegroupname"] == group
    }


def vserver(sim: RunningSimulator, name: str) -> dict[str, Any] | None:
    return next((v for v in sim.sim.objects("lbvserver") if v["name"] == name), None)


async def configured(sim: RunningSimulator, group: str, count: int) -> None:
    await eventually(lambda: len(members(sim, group)) == count, what=f"{count} members in {group}")


async def node_port(kube: KubeClient, namespace: str, name: str, index: int = 0) -> int:
    service = await kube.get(SERVICES, namespace, name)
    return int(service["spec"]["ports"][index]["nodePort"])


async def three_nodes(nodes: MakeNode, tag: str) -> None:
    await nodes(f"{tag}-a", "10.10.0.1")
    await nodes(f"{tag}-b", "10.10.0.2")
    await nodes(f"{tag}-c", "10.10.0.3")
    await nodes(f"{tag}-down", "10.10.0.4", ready=False)
    await nodes(f"{tag}-excluded", "10.10.0.5", excluded=True)


async def test_service_is_configured_on_the_adc_in_four_writes(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl,
    simulator: RunningSimulator, nodes: MakeNode,
) -> None:  # fmt: skip
    await three_nodes(nodes, namespace)
    await start_lbctl(adc=simulator.settings())
    await eventually(lambda: simulator.sim.requests, what="lbctl reads the ADC")
    simulator.sim.reset_counts()
    await kube.create(SERVICES, namespace, load_balancer("web"))
    ip = await wait_for_ip(kube, namespace, "web")
    port = await node_port(kube, namespace, "web")
    base = f"lbctl-{namespace}_web_80-tcp"
    await eventually(lambda: len(members(simulator, f"{base}_sgp")) == 3, what="members")
    assert members(simulator, f"{base}_sgp") == {(f"10.10.0.{i}", port) for i in (1, 2, 3)}
    lbv = vserver(simulator, f"{base}_lbv")
    assert lbv is not None
    assert (lbv["ipv46"], int(lbv["port"]), lbv["servicetype"]) == (ip, 80, "TCP")
    assert lbv["comment"] == f"lbctl owner=lbctl service={namespace}/web port=80/TCP"
    await eventually(lambda: len(simulator.writes()) >= 7, what="all writes")
    bindings = simulator.sim.objects("lbvserver_servicegroup_binding")
    assert {(b["name"], b["servicegroupname"]) for b in bindings} >= {
        (f"{base}_lbv", f"{base}_sgp")
    }
    # The three servers NetScaler created for the binds get lbctl's comment: once per node.
    assert [(r.method, r.resource) for r in simulator.writes()] == [
        ("POST", "servicegroup"),
        ("POST", "lbvserver"),
        ("POST", "servicegroup_servicegroupmember_binding"),
        *[("PUT", "server")] * 3,
        ("POST", "lbvserver_servicegroup_binding"),
    ]


async def test_ports_nodes_and_traffic_policy_changes_are_diffs(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl,
    simulator: RunningSimulator, nodes: MakeNode,
) -> None:  # fmt: skip
    await three_nodes(nodes, namespace)
    await start_lbctl(adc=simulator.settings())
    await kube.create(SERVICES, namespace, load_balancer("app"))
    await wait_for_ip(kube, namespace, "app")
    base = f"lbctl-{namespace}_app"
    await eventually(lambda: len(members(simulator, f"{base}_80-tcp_sgp")) == 3, what="members")
    # The vserver binding is written after the members: wait for it before counting.
    binding = (f"{base}_80-tcp_lbv", f"{base}_80-tcp_sgp")
    await eventually(
        lambda: binding in {(b["name"], b["servicegroupname"])
                          for b in simulator.sim.objects("lbvserver_servicegroup_binding")},
        what="vserver bound",
    )  # fmt: skip

    # A node goes away: one unbind, nothing recreated.
    simulator.sim.reset_counts()
    await set_node(kube, f"{namespace}-c", "10.10.0.3", ready=False)
    await eventually(lambda: len(members(simulator, f"{base}_80-tcp_sgp")) == 2, what="unbound")
    assert [(r.method, r.resource) for r in simulator.writes()] == [
        ("DELETE", "servicegroup_servicegroupmember_binding")
    ]

    # Port 80 becomes 8080 and a UDP port is added.
    ports = [
        {"name": "web", "protocol": "TCP", "port": 8080, "targetPort": 8080},
        {"name": "dns", "protocol": "UDP", "port": 53, "targetPort": 53},
    ]
    await kube.patch(SERVICES, namespace, "app", {"spec": {"ports": ports}})
    await eventually(
        lambda: (
            {f"{base}_8080-tcp_lbv", f"{base}_53-udp_lbv"} <= simulator.names("lbvserver")
            and f"{base}_80-tcp_lbv" not in simulator.names("lbvserver")
        ),
        what="ports follow the Service",
    )
    assert f"{base}_80-tcp_sgp" not in simulator.names("servicegroup")
    assert vserver(simulator, f"{base}_53-udp_lbv")["servicetype"] == "UDP"  # type: ignore[index]

    # externalTrafficPolicy: Local binds an HTTP monitor on healthCheckNodePort.
    await kube.patch(SERVICES, namespace, "app", {"spec": {"externalTrafficPolicy": "Local"}})
    service = await kube.get(SERVICES, namespace, "app")
    health = service["spec"]["healthCheckNodePort"]
    monitor = f"{base}_8080-tcp_mon"

    def bound() -> bool:
        return any(
            b["monitor_name"] == monitor
            for b in simulator.sim.objects("servicegroup_lbmonitor_binding")
        )

    await eventually(bound, what="health monitor bound")
    found = next(m for m in simulator.sim.objects("lbmonitor") if m["monitorname"] == monitor)
    assert (found["type"], int(found["destport"])) == ("HTTP", health)
    await kube.patch(SERVICES, namespace, "app", {"spec": {"externalTrafficPolicy": "Cluster"}})
    await eventually(lambda: monitor not in simulator.names("lbmonitor"), what="monitor removed")

    # Deleting the Service removes everything before the finalizer goes.
    await kube.delete(SERVICES, namespace, "app")

    async def gone() -> bool:
        try:
            await kube.get(SERVICES, namespace, "app")
        except NotFound:
            return True
        return False

    await eventually(gone, what="Service deleted")
    assert not any(n.startswith(base) for n in simulator.names("lbvserver"))
    assert not any(n.startswith(base) for n in simulator.names("servicegroup"))


async def test_restart_makes_no_writes_and_drift_is_repaired_and_orphans_removed(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl,
    simulator: RunningSimulator, nodes: MakeNode,
) -> None:  # fmt: skip
    await three_nodes(nodes, namespace)
    first = await start_lbctl(adc=simulator.settings())
    for name in ("keep", "drift", "gone"):
        await kube.create(SERVICES, namespace, load_balancer(name))
        await wait_for_ip(kube, namespace, name)
    base = f"lbctl-{namespace}"
    for name in ("keep", "drift", "gone"):
        await configured(simulator, f"{base}_{name}_80-tcp_sgp", 3)
    await first.stop()

    # While lbctl is down: a Service disappears (finalizer removed by hand), an admin edits
    # one of lbctl's objects and adds objects of their own.
    await kube.patch(SERVICES, namespace, "gone", {"metadata": {"finalizers": None}})
    await kube.delete(SERVICES, namespace, "gone")
    admin = NitroClient(simulator.url, Credentials("nsroot", SIM_PASSWORD))
    try:
        await admin.update(
            "lbvserver", {"name": f"{base}_drift_80-tcp_lbv", "lbmethod": "ROUNDROBIN"}
        )
        await admin.add(
            "lbvserver",
            {"name": "lbctl-handmade", "servicetype": "HTTP", "ipv46": "192.0.2.50", "port": 80},
        )
        await admin.add(
            "servicegroup",
            {
                "servicegroupname": "lbctl-x_y_80-tcp_sgp",
                "servicetype": "TCP",
                "comment": "someone else's",
            },
        )
    finally:
        await admin.aclose()
    simulator.sim.reset_counts()

    second = await start_lbctl(adc=simulator.settings(resync_period=1.0))
    await eventually(
        lambda: f"{base}_gone_80-tcp_lbv" not in simulator.names("lbvserver"),
        what="orphan of a Service deleted while lbctl was down is removed",
    )
    await eventually(
        lambda: vserver(simulator, f"{base}_drift_80-tcp_lbv")["lbmethod"] == "LEASTCONNECTION",  # type: ignore[index]
        what="hand edit undone",
    )
    writes = [(r.method, r.resource, r.name) for r in simulator.writes()]
    assert ("PUT", "lbvserver", f"{base}_drift_80-tcp_lbv") in writes
    assert not any(name and "_keep_" in name for _, _, name in writes), writes
    assert "lbctl-handmade" in simulator.names("lbvserver")
    assert "lbctl-x_y_80-tcp_sgp" in simulator.names("servicegroup")

    # Someone unbinds a member by hand; the next drift pass binds it again.
    group = f"{base}_keep_80-tcp_sgp"
    port = await node_port(kube, namespace, "keep")
    admin = NitroClient(simulator.url, Credentials("nsroot", SIM_PASSWORD))
    try:
        await admin.unbind(
            "servicegroup_servicegroupmember_binding", group, {"ip": "10.10.0.1", "port": port}
        )
    finally:
        await admin.aclose()
    await eventually(lambda: len(members(simulator, group)) == 3, what="member re-bound")
    assert second.runtime.adc is not None
    assert second.runtime.adc.passes >= 2


async def test_adc_outage_never_holds_back_the_vip_and_converges_later(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl,
    simulator: RunningSimulator, nodes: MakeNode,
) -> None:  # fmt: skip
    await nodes(f"{namespace}-a", "10.10.0.1")
    simulator.sim.faults.outage = True
    await start_lbctl(adc=simulator.settings())
    await kube.create(SERVICES, namespace, load_balancer("web"))
    await wait_for_ip(kube, namespace, "web")
    assert vserver(simulator, f"lbctl-{namespace}_web_80-tcp_lbv") is None
    simulator.sim.faults.outage = False
    await eventually(
        lambda: vserver(simulator, f"lbctl-{namespace}_web_80-tcp_lbv") is not None,
        within=60, what="configured once the ADC is back",
    )  # fmt: skip


async def test_unsupported_port_is_reported_in_status_and_others_work(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl,
    simulator: RunningSimulator, nodes: MakeNode,
) -> None:  # fmt: skip
    await nodes(f"{namespace}-a", "10.10.0.1")
    await start_lbctl(adc=simulator.settings())
    ports = [
        {"name": "web", "protocol": "TCP", "port": 80, "targetPort": 80},
        {"name": "sig", "protocol": "SCTP", "port": 9000, "targetPort": 9000},
    ]
    await kube.create(SERVICES, namespace, load_balancer("mixed", ports=ports))
    ip = await wait_for_ip(kube, namespace, "mixed")

    async def port_status() -> list[dict[str, Any]] | None:
        service = await kube.get(SERVICES, namespace, "mixed")
        ingress = service["status"]["loadBalancer"]["ingress"][0]
        return ingress.get("ports")  # type: ignore[no-any-return]

    found = await eventually(port_status, what="port errors in status")
    assert found == [
        {"port": 80, "protocol": "TCP"},
        {"port": 9000, "protocol": "SCTP", "error": "lbctl.io/UnsupportedProtocol"},
    ]
    assert vserver(simulator, f"lbctl-{namespace}_mixed_80-tcp_lbv") is not None
    events, _ = await kube.list(EVENTS, namespace)
    assert any("SCTP" in e.get("message", "") for e in events)
    service = await kube.get(SERVICES, namespace, "mixed")
    assert service["status"]["loadBalancer"]["ingress"][0]["ip"] == ip


async def test_auto_created_servers_are_removed_once_unused_and_others_kept(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl,
    simulator: RunningSimulator, nodes: MakeNode,
) -> None:  # fmt: skip
    await nodes(f"{namespace}-a", "10.10.0.1")
    await nodes(f"{namespace}-b", "10.10.0.2")
    await nodes(f"{namespace}-c", "10.10.0.3")
    admin = NitroClient(simulator.url, Credentials("nsroot", SIM_PASSWORD))
    try:
        await admin.add("server", {"name": "10.10.0.99", "ipaddress": "10.10.0.99"})
        # Made by hand before lbctl bound to it (named after the IP, as NetScaler names the
        # ones it creates): lbctl uses it and must never delete it.
        await admin.add("server", {"name": "10.10.0.3", "ipaddress": "10.10.0.3"})
        await admin.add("servicegroup", {"servicegroupname": "handmade", "servicetype": "TCP"})
        await admin.bind(
            "servicegroup_servicegroupmember_binding",
            {"servicegroupname": "handmade", "ip": "10.10.0.2", "port": 9999},
        )
    finally:
        await admin.aclose()
    await start_lbctl(adc=simulator.settings(resync_period=1.0))
    await kube.create(SERVICES, namespace, load_balancer("web"))
    await wait_for_ip(kube, namespace, "web")
    await configured(simulator, f"lbctl-{namespace}_web_80-tcp_sgp", 3)
    assert {"10.10.0.1", "10.10.0.2", "10.10.0.3"} <= simulator.names("server")
    await kube.delete(SERVICES, namespace, "web")
    await eventually(
        lambda: "10.10.0.1" not in simulator.names("server"), what="unused server removed"
    )
    # Still bound by someone else's service group, made by hand before lbctl bound to it, or
    # never lbctl's: kept.
    await eventually(
        lambda: not members(simulator, f"lbctl-{namespace}_web_80-tcp_sgp"), what="unbound"
    )
    assert {"10.10.0.2", "10.10.0.3", "10.10.0.99"} <= simulator.names("server")


async def test_a_full_session_table_does_not_stop_lbctl(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl,
    simulator: RunningSimulator, nodes: MakeNode,
) -> None:  # fmt: skip
    """Sessions left by killed processes fill the ADC's table (error 445 at login): lbctl goes
    on with stateless requests."""
    await nodes(f"{namespace}-a", "10.10.0.1")
    leftovers = [NitroClient(simulator.url, Credentials("nsroot", SIM_PASSWORD)) for _ in range(20)]
    for client in leftovers:
        await client.login()
    try:
        running = await start_lbctl(adc=simulator.settings())
        await kube.create(SERVICES, namespace, load_balancer("web"))
        await wait_for_ip(kube, namespace, "web")
        await configured(simulator, f"lbctl-{namespace}_web_80-tcp_sgp", 1)
        assert running.runtime.nitro is not None
        assert running.runtime.nitro.stateless_periods == 1
    finally:
        for client in leftovers:
            await client.aclose()


class RefusingPort80:
    """An ADC that refuses port 80/TCP of every Service (no Kubernetes API is faked here)."""

    async def ensure(
        self,
        service: Mapping[str, Any],
        addresses: list[str],
        still_wanted: Callable[[], bool] = lambda: True,
    ) -> AdcOutcome:
        return AdcOutcome(port_errors={"80-tcp": ("lbctl.io/Refused", "80/TCP refused")})

    async def remove(self, owner: str) -> AdcOutcome:
        return AdcOutcome()

    def may_own(self, owner: str) -> bool:
        return False


async def test_port_errors_never_reach_a_service_created_again_under_its_name(
    kube: KubeClient, namespace: str
) -> None:
    """The ADC step writes ``ports[].error`` for the Service it read; when that Service was
    deleted and created again under its name meanwhile, the write is refused (it was not
    guarded, and gave the new Service the old one's address, which no record named)."""
    old = await kube.create(SERVICES, namespace, load_balancer("web"))
    await kube.delete(SERVICES, namespace, "web")
    await kube.create(SERVICES, namespace, load_balancer("web"))
    step = AdcStep(RefusingPort80(), kube, EventRecorder(kube))
    with pytest.raises(Conflict):
        await step.ensure(old, ServiceView.from_raw(old), [ipaddress.ip_address("10.77.9.90")])
    assert shown_ip(await kube.get(SERVICES, namespace, "web")) is None


async def test_check_netscaler_judges_what_lbctl_configured(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl,
    simulator: RunningSimulator, nodes: MakeNode,
) -> None:  # fmt: skip
    """A peer client (check_netscaler from PyPI) reads lbctl's objects as healthy, then sees
    the group and vserver go CRITICAL when every member's probe fails."""
    await three_nodes(nodes, namespace)
    await start_lbctl(adc=simulator.settings())
    await kube.create(SERVICES, namespace, load_balancer("mon"))
    await wait_for_ip(kube, namespace, "mon")
    base = f"lbctl-{namespace}_mon_80-tcp"
    await configured(simulator, f"{base}_sgp", 3)

    def vserver_up() -> bool:
        lbv = vserver(simulator, f"{base}_lbv")
        return lbv is not None and lbv["curstate"] == "UP"

    await eventually(vserver_up, what="vserver bound and UP")
    group = ("-C", "servicegroup", "-n", f"{base}_sgp")
    state = ("-C", "state", "-o", "lbvserver", "-n", f"{base}_lbv", "-w", "90", "-c", "50")
    assert (await check_netscaler(simulator.url, SIM_PASSWORD, *group))[0] == OK
    assert (await check_netscaler(simulator.url, SIM_PASSWORD, *state))[0] == OK
    assert simulator.sim.set_probe("DOWN", {"servicegroupname": f"{base}_sgp"}) == 3
    code, out = await check_netscaler(simulator.url, SIM_PASSWORD, *group)
    assert code == CRITICAL, out
    assert "0/3" in out
    code, out = await check_netscaler(simulator.url, SIM_PASSWORD, *state)
    assert code == CRITICAL, out
    assert "0%" in out


async def test_new_services_get_two_status_writes_each_and_no_conflicts(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl, simulator: RunningSimulator
) -> None:
    """Many new Services at once: each Service's status is written twice (its address, then
    the NetScaler's condition), not again because a reconcile decided on a cached Service
    older than lbctl's own last write (a write guarded by it can only conflict; 1 in 3 did)."""
    running = await start_lbctl(adc=simulator.settings())
    count = 24
    await asyncio.gather(
        *(kube.create(SERVICES, namespace, load_balancer(f"s{i}")) for i in range(count))
    )

    async def all_configured() -> bool:
        listed, _ = await kube.list(SERVICES, namespace)
        return sum(
            any(c["type"] == ADC_CONDITION and c["status"] == "True"
                for c in (s.get("status") or {}).get("conditions") or [])
            for s in listed
        ) == count  # fmt: skip

    await eventually(all_configured, what="every Service configured on the ADC")
    patches = running.client.calls[("services/status", "patch")]
    conflicts = running.client.results[("patch", "409")]
    assert (patches, conflicts) == (2 * count, 0)
