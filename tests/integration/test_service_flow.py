"""The prototype's flow end to end on a real apiserver: Service → Vip → annotation + status."""

from __future__ import annotations

import asyncio
import ipaddress

from lbctl.kube.client import EVENTS, SERVICES, VIPS, KubeClient
from lbctl.kube.errors import NotFound
from lbctl.model import LB_FINALIZER
from tests.integration.conftest import StartLbctl, load_balancer, shown_ip, wait_for_ip
from tests.waiting import eventually

RANGE = ipaddress.ip_network("10.77.0.0/24")


async def gone(kube: KubeClient, resource: object, namespace: str, name: str) -> bool:
    try:
        await kube.get(resource, namespace, name)  # type: ignore[arg-type]
    except NotFound:
        return True
    return False


async def test_load_balancer_service_gets_vip_recorded_in_a_vip(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """A LoadBalancer Service gets an address from VIP_RANGE in a Vip, annotation and status."""
    await start_lbctl()
    await kube.create(SERVICES, namespace, load_balancer("echo1"))
    ip = await wait_for_ip(kube, namespace, "echo1")

    assert ipaddress.ip_address(ip) in RANGE
    service = await kube.get(SERVICES, namespace, "echo1")
    assert service["status"]["loadBalancer"]["ingress"] == [{"ip": ip, "ipMode": "Proxy"}]
    assert LB_FINALIZER in service["metadata"]["finalizers"]
    vip = await kube.get(VIPS, namespace, "echo1")
    assert vip["spec"]["ipaddress"] == ip
    assert vip["spec"]["service"] == "echo1"


async def test_other_service_types_are_left_alone(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """A ClusterIP Service gets no Vip, annotation, status or finalizer."""
    await start_lbctl()
    plain = load_balancer("plain")
    plain["spec"]["type"] = "ClusterIP"
    await kube.create(SERVICES, namespace, plain)
    await kube.create(SERVICES, namespace, load_balancer("barrier"))
    await wait_for_ip(kube, namespace, "barrier")

    service = await kube.get(SERVICES, namespace, "plain")
    assert "com.citrix.vip" not in (service["metadata"].get("annotations") or {})
    assert not service["metadata"].get("finalizers")
    assert await gone(kube, VIPS, namespace, "plain")


async def test_deleting_the_service_releases_its_address_and_vip(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """Delete → finalizer lets go after the Vip is gone; the address is handed out again."""
    running = await start_lbctl()
    await kube.create(SERVICES, namespace, load_balancer("first"))
    first_ip = await wait_for_ip(kube, namespace, "first")

    await kube.delete(SERVICES, namespace, "first")
    await eventually(lambda: gone(kube, SERVICES, namespace, "first"), what="service deleted")
    assert await gone(kube, VIPS, namespace, "first")
    assert running.runtime.allocator.get(f"{namespace}/first") is None

    await kube.create(SERVICES, namespace, load_balancer("second"))
    assert await wait_for_ip(kube, namespace, "second") == first_ip


async def test_type_change_away_from_load_balancer_cleans_up(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """LoadBalancer → ClusterIP releases the address and clears annotation, status, finalizer."""
    running = await start_lbctl()
    await kube.create(SERVICES, namespace, load_balancer("web"))
    await wait_for_ip(kube, namespace, "web")

    await kube.patch(SERVICES, namespace, "web", {"spec": {"type": "ClusterIP"}})

    async def cleaned() -> bool:
        service = await kube.get(SERVICES, namespace, "web")
        meta = service["metadata"]
        return (
            "com.citrix.vip" not in (meta.get("annotations") or {})
            and not (service.get("status") or {}).get("loadBalancer")
            and LB_FINALIZER not in (meta.get("finalizers") or [])
        )

    await eventually(cleaned, what="service cleaned up")
    # The Vip goes after the status is cleared (its deletion is the cleanup's last step).
    await eventually(lambda: gone(kube, VIPS, namespace, "web"), what="Vip deleted")
    assert running.runtime.allocator.get(f"{namespace}/web") is None


async def test_a_vip_deleted_by_hand_comes_back_with_the_same_address(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """The address a Service shows is never moved, even when its Vip record is lost."""
    await start_lbctl()
    await kube.create(SERVICES, namespace, load_balancer("a"))
    await kube.create(SERVICES, namespace, load_balancer("b"))
    ip_a = await wait_for_ip(kube, namespace, "a")
    await wait_for_ip(kube, namespace, "b")

    old_uid = (await kube.get(VIPS, namespace, "a"))["metadata"]["uid"]
    await kube.delete(VIPS, namespace, "a")

    async def recreated() -> str | None:
        try:
            vip = await kube.get(VIPS, namespace, "a")
        except NotFound:
            return None
        return vip["spec"]["ipaddress"] if vip["metadata"]["uid"] != old_uid else None

    assert await eventually(recreated, what="vip recreated") == ip_a
    assert shown_ip(await kube.get(SERVICES, namespace, "a")) == ip_a


async def test_a_vip_created_without_address_is_filled_from_the_range(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """The prototype's IPAM step: an empty spec.ipaddress gets the lowest free address."""
    await start_lbctl()
    await kube.create(
        VIPS,
        namespace,
        {
            "apiVersion": "ipam.citrix.com/v1",
            "kind": "Vip",
            "metadata": {"name": "manual"},
            "spec": {"description": "made by hand"},
        },
    )

    async def filled() -> str | None:
        vip = await kube.get(VIPS, namespace, "manual")
        return str(vip["spec"].get("ipaddress") or "") or None

    assert await eventually(filled, what="vip filled") == "10.77.0.1"


async def test_restart_changes_no_address_and_never_duplicates(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """After a restart every address stays put; Services made meanwhile get fresh ones."""
    first = await start_lbctl()
    names = [f"svc-{i}" for i in range(6)]
    for name in names:
        await kube.create(SERVICES, namespace, load_balancer(name))
    before = {name: await wait_for_ip(kube, namespace, name) for name in names}
    await first.stop()

    await kube.delete(SERVICES, namespace, "svc-0")
    for name in ("late-1", "late-2"):
        await kube.create(SERVICES, namespace, load_balancer(name))
    await start_lbctl()

    late = {name: await wait_for_ip(kube, namespace, name) for name in ("late-1", "late-2")}
    await eventually(lambda: gone(kube, SERVICES, namespace, "svc-0"), what="svc-0 deleted")
    after = {name: await wait_for_ip(kube, namespace, name) for name in names[1:]}
    assert after == {name: before[name] for name in names[1:]}
    assert not set(late.values()) & set(after.values())
    assert len(set(late.values())) == 2


async def test_existing_vips_are_loaded_before_anything_is_allocated(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """A Vip recorded while lbctl was down keeps its address; a new Service gets another."""
    await kube.create(
        VIPS,
        namespace,
        {
            "apiVersion": "ipam.citrix.com/v1",
            "kind": "Vip",
            "metadata": {"name": "held"},
            "spec": {"ipaddress": "10.77.0.1", "description": "reserved"},
        },
    )
    await kube.create(SERVICES, namespace, load_balancer("newcomer"))
    await start_lbctl()

    assert await wait_for_ip(kube, namespace, "newcomer") == "10.77.0.2"


async def test_two_hundred_services_at_once_get_distinct_addresses_in_range(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """200 Services created together: 200 different addresses, all inside VIP_RANGE."""
    await start_lbctl()
    names = [f"bulk-{i:03d}" for i in range(200)]
    for batch in range(0, len(names), 25):
        await asyncio.gather(
            *(kube.create(SERVICES, namespace, load_balancer(n)) for n in names[batch : batch + 25])
        )

    async def all_assigned() -> dict[str, str] | None:
        items, _ = await kube.list(SERVICES, namespace)
        shown = {item["metadata"]["name"]: shown_ip(item) for item in items}
        if len(shown) == len(names) and all(shown.values()):
            return {name: str(ip) for name, ip in shown.items()}
        return None

    assigned = await eventually(all_assigned, within=120, what="all 200 services assigned")
    addresses = [ipaddress.ip_address(ip) for ip in assigned.values()]
    assert len(set(addresses)) == 200
    assert all(address in RANGE for address in addresses)
    vips, _ = await kube.list(VIPS, namespace)
    assert sorted(v["spec"]["ipaddress"] for v in vips) == sorted(assigned.values())


async def test_an_address_outside_the_new_pools_stays_and_is_flagged(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """VIP_RANGE changed under a Service in use: it keeps its address, its Vip says why."""
    first = await start_lbctl(vip_range='["10.83.0.0/24"]')
    await kube.create(SERVICES, namespace, load_balancer("sticky"))
    assert await wait_for_ip(kube, namespace, "sticky") == "10.83.0.1"
    await first.stop()

    await start_lbctl(vip_range='["10.84.0.0/24"]')
    await kube.create(SERVICES, namespace, load_balancer("newcomer"))
    assert await wait_for_ip(kube, namespace, "newcomer") == "10.84.0.1"

    async def flagged() -> dict[str, object] | None:
        status = (await kube.get(VIPS, namespace, "sticky")).get("status") or {}
        reason = (status.get("conditions") or [{}])[0].get("reason")
        return status if reason == "OutsidePools" else None

    status = await eventually(flagged, what="vip flagged")
    assert status["state"] == "Allocated"
    assert shown_ip(await kube.get(SERVICES, namespace, "sticky")) == "10.83.0.1"


async def test_of_two_vips_claiming_one_address_the_older_keeps_it(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """Rebuild meets records in creation order: the older Vip wins, the newer gets an Event."""
    for name in ("zz-older", "aa-newer"):
        await kube.create(
            VIPS, namespace,
            {"apiVersion": "ipam.citrix.com/v1", "kind": "Vip", "metadata": {"name": name},
             "spec": {"ipaddress": "10.77.0.9"}},
        )  # fmt: skip
    running = await start_lbctl()
    holder = running.runtime.allocator.holder(ipaddress.ip_address("10.77.0.9"))
    assert holder is not None
    assert holder.owner == f"{namespace}/zz-older"

    async def warned() -> bool:
        items, _ = await kube.list(EVENTS, namespace)
        return any(e["involvedObject"]["name"] == "aa-newer" and e["reason"] == "AddressInUse"
                   for e in items)  # fmt: skip

    await eventually(warned, what="AddressInUse event on the newer Vip")


async def test_restart_in_the_middle_of_300_creates_and_deletes(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """lbctl stops mid-churn and starts again: every live Service ends with its own address,
    and one it showed before the restart is the one it keeps."""
    first = await start_lbctl(vip_range='["10.85.0.0/23"]')
    names = [f"churn-{i:03d}" for i in range(300)]
    deleted = set(names[::7])

    async def create_and_delete(batch: list[str]) -> None:
        await asyncio.gather(*(kube.create(SERVICES, namespace, load_balancer(n)) for n in batch))
        await asyncio.gather(*(kube.delete(SERVICES, namespace, n) for n in batch if n in deleted))

    for start in range(0, 150, 25):
        await create_and_delete(names[start : start + 25])
    await first.stop()
    items, _ = await kube.list(SERVICES, namespace)
    before = {item["metadata"]["name"]: ip for item in items if (ip := shown_ip(item))}
    assert before, "some Services were served before the restart"

    await start_lbctl(vip_range='["10.85.0.0/23"]')
    for start in range(150, 300, 25):
        await create_and_delete(names[start : start + 25])

    live = set(names) - deleted

    async def settled() -> dict[str, str] | None:
        items, _ = await kube.list(SERVICES, namespace)
        shown = {item["metadata"]["name"]: shown_ip(item) for item in items}
        if set(shown) == live and all(shown.values()):
            return {name: str(ip) for name, ip in shown.items()}
        return None

    after = await eventually(settled, within=120, what="all live Services served")
    assert len(set(after.values())) == len(live)
    assert all(after[name] == ip for name, ip in before.items() if name in live)

    async def vips_match() -> bool:  # deleted Services' Vips go after the Services do
        vips, _ = await kube.list(VIPS, namespace)
        return sorted(v["spec"]["ipaddress"] for v in vips) == sorted(after.values())

    await eventually(vips_match, within=60, what="one Vip per live Service, with its address")
