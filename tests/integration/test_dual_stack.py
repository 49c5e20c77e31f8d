"""IP families: one address per family for dual-stack Services, the right family otherwise."""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from lbctl.kube.client import EVENTS, SERVICES, VIPS, KubeClient
from lbctl.kube.errors import NotFound
from tests.integration.conftest import RunningSimulator, StartLbctl, load_balancer
from tests.integration.invariants import ShownAddresses
from tests.waiting import eventually

DUAL_RANGE = '["10.90.0.0/29", "fd00:90::/125"]'


async def ingress_ips(kube: KubeClient, namespace: str, name: str) -> list[str]:
    service = await kube.get(SERVICES, namespace, name)
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [str(i["ip"]) for i in ingress]


async def wait_for_ips(kube: KubeClient, namespace: str, name: str, count: int) -> list[str]:
    async def probe() -> list[str] | None:
        ips = await ingress_ips(kube, namespace, name)
        return ips if len(ips) == count else None

    return await eventually(probe, what=f"{count} ingress IPs on {name}")


def dual(
    name: str, policy: str = "PreferDualStack", families: list[str] | None = None
) -> dict[str, Any]:
    return load_balancer(name, ipFamilyPolicy=policy, ipFamilies=families or ["IPv4", "IPv6"])


async def events_about(kube: KubeClient, namespace: str, name: str) -> list[dict[str, Any]]:
    items, _ = await kube.list(EVENTS, namespace)
    return [e for e in items if e["involvedObject"]["name"] == name]


async def test_dual_stack_service_gets_one_address_per_family_everywhere(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl,
    simulator: RunningSimulator, nodes: Callable[..., Awaitable[None]],
) -> None:  # fmt: skip
    await nodes(f"{namespace}-a", "10.10.0.1")
    first = await start_lbctl(vip_range=DUAL_RANGE, adc=simulator.settings())
    await kube.create(SERVICES, namespace, dual("both"))
    assert await wait_for_ips(kube, namespace, "both", 2) == ["10.90.0.1", "fd00:90::1"]
    vip = await kube.get(VIPS, namespace, "both")
    assert (vip["spec"]["ipaddress"], vip["spec"]["secondaryIpaddress"]) == (
        "10.90.0.1",
        "fd00:90::1",
    )
    service = await kube.get(SERVICES, namespace, "both")
    assert service["metadata"]["annotations"]["com.citrix.vip"] == "10.90.0.1"
    base = f"lbctl-{namespace}_both_80-tcp"
    await eventually(
        lambda: {f"{base}_lbv", f"{base}_lbv6"} <= simulator.names("lbvserver"), what="two vservers"
    )
    by_name = {v["name"]: v["ipv46"] for v in simulator.sim.objects("lbvserver")}
    assert (by_name[f"{base}_lbv"], by_name[f"{base}_lbv6"]) == ("10.90.0.1", "fd00:90::1")

    # A single-stack IPv6 Service gets an IPv6 address, never an IPv4 one.
    await kube.create(SERVICES, namespace, dual("six", policy="SingleStack", families=["IPv6"]))
    assert await wait_for_ips(kube, namespace, "six", 1) == ["fd00:90::2"]

    # A restart keeps both addresses and writes nothing.
    await first.stop()
    simulator.sim.reset_counts()
    second = await start_lbctl(vip_range=DUAL_RANGE, adc=simulator.settings())
    await eventually(lambda: second.runtime.leading.is_set(), what="leading again")
    await kube.create(SERVICES, namespace, dual("third"))
    assert await wait_for_ips(kube, namespace, "third", 2) == ["10.90.0.2", "fd00:90::3"]
    assert await ingress_ips(kube, namespace, "both") == ["10.90.0.1", "fd00:90::1"]

    # Going single-stack releases the second address (and its vserver).
    await kube.patch(
        SERVICES,
        namespace,
        "both",
        {"spec": {"ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"]}},
    )
    assert await wait_for_ips(kube, namespace, "both", 1) == ["10.90.0.1"]
    await eventually(
        lambda: f"{base}_lbv6" not in simulator.names("lbvserver"), what="v6 vserver gone"
    )
    vip = await kube.get(VIPS, namespace, "both")
    assert "secondaryIpaddress" not in vip["spec"]
    assert second.runtime.allocator.holder(ipaddress.ip_address("fd00:90::1")) is None


async def test_without_a_second_family_require_warns_and_prefer_waits_for_one(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    await start_lbctl(vip_range='["10.91.0.0/29", "fd00:91::/128"]')
    await kube.create(SERVICES, namespace, dual("taker", policy="SingleStack", families=["IPv6"]))
    assert await wait_for_ips(kube, namespace, "taker", 1) == ["fd00:91::"]
    await kube.create(SERVICES, namespace, dual("required", policy="RequireDualStack"))
    await kube.create(SERVICES, namespace, dual("preferred"))
    assert await wait_for_ips(kube, namespace, "required", 1) == ["10.91.0.1"]
    assert await wait_for_ips(kube, namespace, "preferred", 1) == ["10.91.0.2"]

    async def warned() -> bool:
        events = await events_about(kube, namespace, "required")
        return any(
            e["type"] == "Warning" and "RequireDualStack: no IPv6 address" in e["message"]
            for e in events
        )

    await eventually(warned, what="RequireDualStack warning")
    # The IPv6 address is freed: one of the waiting Services gets it without being touched.
    await kube.delete(SERVICES, namespace, "taker")

    async def taken() -> list[str] | None:
        both = await ingress_ips(kube, namespace, "required") + await ingress_ips(
            kube, namespace, "preferred"
        )
        return both if len(both) == 3 else None

    assert sorted(await eventually(taken, what="freed IPv6 address taken")) == [
        "10.91.0.1",
        "10.91.0.2",
        "fd00:91::",
    ]


@pytest.mark.parametrize("v6", ["fd00:93::/126", "fd00:93::/128"])
async def test_a_dual_stack_service_whose_vip_is_deleted_keeps_both_addresses(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl, v6: str
) -> None:
    """A Vip deleted by hand while its Service shows both addresses comes back with both:
    the second family's too (it got another one, or none with a one-address IPv6 pool)."""
    await start_lbctl(f'["10.77.11.0/30", "{v6}"]')
    await kube.create(SERVICES, namespace, dual("both"))
    before = await wait_for_ips(kube, namespace, "both", 2)
    async with ShownAddresses(kube, namespace) as watch:
        old_uid = (await kube.get(VIPS, namespace, "both"))["metadata"]["uid"]
        await kube.delete(VIPS, namespace, "both")

        async def recreated() -> list[str] | None:
            with contextlib.suppress(NotFound):
                vip = await kube.get(VIPS, namespace, "both")
                spec = vip["spec"]
                if vip["metadata"]["uid"] != old_uid and spec.get("secondaryIpaddress"):
                    return [spec["ipaddress"], spec["secondaryIpaddress"]]
            return None

        assert await eventually(recreated, what="the Vip again, with both addresses") == before
        assert await ingress_ips(kube, namespace, "both") == before
    assert not watch.violations, watch.violations


async def test_a_second_family_address_outside_every_pool_is_kept_when_its_vip_is_gone(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """As for the first family: a dual-stack Service whose IPv6 address left every pool (the
    range was shrunk) and whose Vip was deleted by hand while lbctl was down keeps both
    addresses it shows (their records name it), rather than losing its IPv6 address."""
    first = await start_lbctl(vip_range='["10.147.0.0/29", "fd00:147::/125"]')
    await kube.create(SERVICES, namespace, dual("kept"))
    assert await wait_for_ips(kube, namespace, "kept", 2) == ["10.147.0.1", "fd00:147::1"]
    await first.stop()
    await kube.delete(VIPS, namespace, "kept")
    async with ShownAddresses(kube, namespace) as watch:
        await start_lbctl(vip_range='["10.147.0.0/29"]')

        async def decided() -> tuple[str, str | None, list[str]] | None:
            """The Vip written again and the Service's second family decided: kept (the Vip
            records it) or dropped (the Service shows one address)."""
            with contextlib.suppress(NotFound):
                vip = await kube.get(VIPS, namespace, "kept")
                spec, ips = vip["spec"], await ingress_ips(kube, namespace, "kept")
                if (vip.get("status") or {}).get("state") == "Allocated" and (
                    "secondaryIpaddress" in spec or len(ips) == 1
                ):
                    return spec["ipaddress"], spec.get("secondaryIpaddress"), ips
            return None

        assert await eventually(decided, what="Vip written again") == (
            "10.147.0.1", "fd00:147::1", ["10.147.0.1", "fd00:147::1"],
        )  # fmt: skip
    assert not watch.violations, watch.violations
