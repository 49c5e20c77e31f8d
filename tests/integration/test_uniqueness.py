"""No address on two Services, ever: the durable per-address records on the real apiserver.

Each test watches every instant (``ShownAddresses``), not only the end state.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from lbctl import app
from lbctl.config import Settings
from lbctl.devenv.controlplane import LocalControlPlane
from lbctl.ipam.ranges import parse_vip_range
from lbctl.kube.client import (
    EVENTS,
    JSON,
    SERVICES,
    VIP_ADDRESSES,
    VIPS,
    KubeClient,
    Resource,
    api_client_from,
)
from lbctl.kube.errors import Conflict, Invalid, KubeUnavailable, NotFound
from lbctl.reconcile.addresses import PRUNE_AFTER
from lbctl.vipaddress import ADDRESS_FINALIZER
from tests.integration.conftest import (
    StartLbctl,
    load_balancer,
    settled,
    shared,
    shown_ip,
    wait_for_ip,
)
from tests.integration.invariants import ShownAddresses, leaked_records
from tests.waiting import eventually

pytestmark = pytest.mark.integration


async def vip_state(kube: KubeClient, namespace: str, name: str) -> str | None:
    with contextlib.suppress(NotFound):
        vip = await kube.get(VIPS, namespace, name)
        return str((vip.get("status") or {}).get("state") or "") or None
    return None


async def test_a_hand_deleted_vip_keeps_its_address_from_a_waiting_service(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """One-address pool: deleting the owner's Vip by hand must not hand its address to the
    Service waiting for one while the owner still shows it; the owner's Vip comes back."""
    await start_lbctl('["10.77.9.1"]')
    await kube.create(SERVICES, namespace, load_balancer("owner"))
    assert await wait_for_ip(kube, namespace, "owner") == "10.77.9.1"
    await kube.create(SERVICES, namespace, load_balancer("waiter"))
    await eventually(
        lambda: vip_state(kube, namespace, "waiter"), what="waiter's Vip says why it waits"
    )
    async with ShownAddresses(kube, namespace) as watch:
        old_uid = (await kube.get(VIPS, namespace, "owner"))["metadata"]["uid"]
        await kube.delete(VIPS, namespace, "owner")

        async def recreated() -> str | None:
            with contextlib.suppress(NotFound):
                vip = await kube.get(VIPS, namespace, "owner")
                if vip["metadata"]["uid"] != old_uid:
                    return str(vip["spec"]["ipaddress"])
            return None

        assert await eventually(recreated, what="owner's Vip recreated") == "10.77.9.1"
        waiter = await kube.get(SERVICES, namespace, "waiter")
        assert shown_ip(waiter) is None
        assert await vip_state(kube, namespace, "waiter") == "Pending"
        assert shown_ip(await kube.get(SERVICES, namespace, "owner")) == "10.77.9.1"
    assert not watch.violations, watch.violations


async def test_the_checker_sees_a_duplicate_that_lasts_an_instant(
    kube: KubeClient, namespace: str
) -> None:
    """Negative control: two Services made to show one address, briefly, are reported."""
    async with ShownAddresses(kube, namespace) as watch:
        for name in ("x", "y"):
            await kube.create(SERVICES, namespace, load_balancer(name))
            status = {"loadBalancer": {"ingress": [{"ip": "10.77.9.30"}]}}
            await kube.patch(SERVICES, namespace, name, {"status": status}, subresource="status")
        await kube.patch(
            SERVICES, namespace, "x", {"status": {"loadBalancer": None}}, subresource="status"
        )
        await eventually(lambda: watch.violations, what="the duplicate reported")
    assert watch.violations[0].startswith("10.77.9.30 shown by")


async def test_the_checker_tells_a_sharer_edited_after_the_version_written_on(
    kube: KubeClient, namespace: str
) -> None:
    """Negative control of the race allowance: y joins x's address by hand, written on its
    version from before x was edited to clash: counted as raced; the same join written on a
    version from after the edit is a violation."""
    status = {"loadBalancer": {"ingress": [{"ip": "10.77.9.31"}]}}
    async with ShownAddresses(kube, namespace) as watch:
        await kube.create(SERVICES, namespace, shared("x", "blue", ("TCP", 80)))
        await kube.patch(SERVICES, namespace, "x", {"status": status}, subresource="status")
        y = await kube.create(SERVICES, namespace, shared("y", "blue", ("TCP", 443)))
        ports = [{"name": "p", "protocol": "TCP", "port": 443, "targetPort": 443}]
        await kube.patch(SERVICES, namespace, "x", {"spec": {"ports": ports}})
        guarded = {
            "metadata": {"resourceVersion": y["metadata"]["resourceVersion"]},
            "status": status,
        }
        await kube.patch(SERVICES, namespace, "y", guarded, subresource="status")
        await eventually(lambda: watch.raced, what="the raced join counted")
        assert not watch.violations, watch.violations
        await kube.patch(
            SERVICES, namespace, "y", {"status": {"loadBalancer": None}}, subresource="status"
        )
        await kube.patch(SERVICES, namespace, "y", {"status": status}, subresource="status")
        await eventually(lambda: watch.violations, what="the join after the edit reported")
    assert watch.violations[0].startswith("10.77.9.31 shown by")


async def test_a_hand_deleted_address_record_stays_until_the_address_is_free(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """Deleting a VipAddress by hand leaves it Terminating while its Service shows the address
    (the name stays taken); it goes once the Service lets the address go."""
    await start_lbctl('["10.77.9.2"]')
    await kube.create(SERVICES, namespace, load_balancer("owner"))
    assert await wait_for_ip(kube, namespace, "owner") == "10.77.9.2"
    await kube.delete(VIP_ADDRESSES, None, "10.77.9.2")
    record = await kube.get(VIP_ADDRESSES, None, "10.77.9.2")
    assert record["metadata"]["deletionTimestamp"]
    assert record["metadata"]["finalizers"] == [ADDRESS_FINALIZER]
    # The owner is still reconciled as usual (no "address in use" for its own address).
    await kube.patch(SERVICES, namespace, "owner", {"metadata": {"labels": {"edited": "yes"}}})
    await kube.create(SERVICES, namespace, load_balancer("waiter"))
    await eventually(lambda: vip_state(kube, namespace, "waiter"), what="waiter pending")
    assert shown_ip(await kube.get(SERVICES, namespace, "waiter")) is None
    await kube.delete(SERVICES, namespace, "owner")
    assert await wait_for_ip(kube, namespace, "waiter") == "10.77.9.2"
    reasons = [e["reason"] for e in (await kube.list(EVENTS, namespace))[0]
               if e["involvedObject"]["name"] == "owner"]  # fmt: skip
    assert "AddressInUse" not in reasons, reasons


@pytest.mark.parametrize(
    ("edited", "victim", "down"), [("b", "a", True), ("a", "b", True), ("b", "a", False)]
)
async def test_a_vip_re_pointed_by_hand_onto_another_address_in_use_comes_back(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl, edited: str, victim: str,
    down: bool,
) -> None:  # fmt: skip
    """One Service's Vip is re-pointed by hand onto the address another Service shows, while
    lbctl is down (the edited Vip listed after its victim's, or before it) or running: the
    victim keeps its address and its Vip, and the edited Service's Vip records its own
    address again (it stayed on the stolen address, refused, retried once a minute)."""
    vip_range = '["10.77.9.70 - 10.77.9.72"]'
    first = await start_lbctl(vip_range)
    for name in ("a", "b"):
        await kube.create(SERVICES, namespace, load_balancer(name))
    shown = {name: await wait_for_ip(kube, namespace, name) for name in ("a", "b")}
    if down:
        await first.stop()
    async with ShownAddresses(kube, namespace) as watch:
        await kube.patch(VIPS, namespace, edited, {"spec": {"ipaddress": shown[victim]}})
        if down:
            await start_lbctl(vip_range)

        async def own_address_again() -> bool:
            vip = await kube.get(VIPS, namespace, edited)
            return bool(vip["spec"]["ipaddress"] == shown[edited])

        await eventually(own_address_again, what=f"{edited}'s Vip records its own address")
        for name in ("a", "b"):
            assert shown_ip(await kube.get(SERVICES, namespace, name)) == shown[name]
            assert (await kube.get(VIPS, namespace, name))["spec"]["ipaddress"] == shown[name]
            record = await kube.get(VIP_ADDRESSES, None, shown[name])
            assert [h["name"] for h in record["spec"]["holders"]] == [name]
    assert not watch.violations, watch.violations


class LosingReplies(KubeClient):
    """The apiserver applies the write, and its reply is lost on the way back (a client
    timeout): a fault the real server cannot be asked for, so the client side fakes it."""

    def __init__(self, api: Any, lose: dict[str, int]) -> None:
        super().__init__(api)
        self.lose = Counter(lose)
        self.lost: Counter[str] = Counter()

    def _maybe_lose(self, resource: Resource) -> None:
        if self.lose[resource.plural] > 0:
            self.lose[resource.plural] -= 1
            self.lost[resource.plural] += 1
            raise KubeUnavailable(f"POST {resource.plural}: reply lost (injected)")

    async def create(self, resource: Resource, *args: Any, **kwargs: Any) -> Any:
        created = await super().create(resource, *args, **kwargs)
        self._maybe_lose(resource)
        return created


@pytest.fixture
async def lossy_lbctl(
    control_plane: LocalControlPlane,
) -> AsyncIterator[tuple[LosingReplies, asyncio.Task[None]]]:
    client = LosingReplies(
        await api_client_from(str(control_plane.kubeconfig)), {"vipaddresses": 3, "vips": 2}
    )
    settings = Settings(
        pools=parse_vip_range('["10.77.9.8/29"]'),
        kubeconfig=str(control_plane.kubeconfig),
        metrics_bind_address="0",
    )
    runtime = app.build(settings, client)
    task = asyncio.create_task(app.run_with(settings, client, runtime))
    await eventually(lambda: runtime.started.is_set(), what="lbctl start")
    yield client, task
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await client.close()


async def test_a_lost_reply_is_read_back_and_never_hands_the_address_out_twice(
    kube: KubeClient,
    namespace: str,
    lossy_lbctl: tuple[LosingReplies, asyncio.Task[None]],
    start_lbctl: StartLbctl,
) -> None:
    client, task = lossy_lbctl
    async with ShownAddresses(kube, namespace) as watch:
        for name in ("a", "b"):
            await kube.create(SERVICES, namespace, load_balancer(name))
        shown = {name: await wait_for_ip(kube, namespace, name) for name in ("a", "b")}
        assert client.lost["vipaddresses"] >= 1
        assert client.lost["vips"] >= 1
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # A restart rebuilds from the records: the next Service gets a third address.
        await start_lbctl('["10.77.9.8/29"]')
        await kube.create(SERVICES, namespace, load_balancer("c"))
        shown["c"] = await wait_for_ip(kube, namespace, "c")
    assert len(set(shown.values())) == 3, shown
    vips, _ = await kube.list(VIPS, namespace)
    assert sorted(v["spec"]["ipaddress"] for v in vips) == sorted(shown.values())
    assert not await leaked_records(kube, namespace)
    assert not watch.violations, watch.violations


class FailingOnce(KubeClient):
    """The Service status write is refused once with 409 Conflict."""

    def __init__(self, api: Any) -> None:
        super().__init__(api)
        self.refused = 0

    async def patch(self, resource: Resource, *args: Any, **kwargs: Any) -> Any:
        if resource is SERVICES and kwargs.get("subresource") == "status" and not self.refused:
            self.refused += 1
            raise Conflict(409, "Conflict", "injected")
        return await super().patch(resource, *args, **kwargs)


async def test_a_refused_write_then_delete_frees_the_address_without_restart(
    kube: KubeClient, namespace: str, control_plane: LocalControlPlane, start_lbctl: StartLbctl
) -> None:
    """A first write fails, the Service goes: its address must be free at once (it used to
    stay held in memory until restart)."""
    client = FailingOnce(await api_client_from(str(control_plane.kubeconfig)))
    settings = Settings(
        pools=parse_vip_range('["10.77.9.20"]'),
        kubeconfig=str(control_plane.kubeconfig),
        metrics_bind_address="0",
        workers=1,
    )
    runtime = app.build(settings, client)
    task = asyncio.create_task(app.run_with(settings, client, runtime))
    try:
        await eventually(lambda: runtime.started.is_set(), what="lbctl start")
        await kube.create(SERVICES, namespace, load_balancer("first"))
        await eventually(lambda: client.refused, what="a refused write")
        await kube.delete(SERVICES, namespace, "first")
        await kube.create(SERVICES, namespace, load_balancer("second"))
        assert await wait_for_ip(kube, namespace, "second") == "10.77.9.20"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.close()
    assert not await leaked_records(kube, namespace)


@pytest.mark.parametrize("address", ["2001:DB8::1", "2001:db8:0::1", "10.0.0.300", "fe80::1%eth0"])
async def test_an_address_record_must_hold_a_canonical_address(
    kube: KubeClient, address: str
) -> None:
    body = {
        "apiVersion": "ipam.citrix.com/v1",
        "kind": "VipAddress",
        "metadata": {"generateName": "bad-"},
        "spec": {
            "address": address,
            "holders": [{"kind": "Service", "namespace": "a", "name": "b", "uid": "u"}],
        },
    }
    with pytest.raises(Invalid, match="canonical form"):
        await kube.create(VIP_ADDRESSES, None, body)


async def test_records_edited_by_hand_never_put_one_address_on_two_services(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """A record edited to name a Service waiting for its address, then the owner's Vip
    deleted: the waiter must not show the address while the owner still does."""
    await start_lbctl('["10.77.9.50"]')
    await kube.create(SERVICES, namespace, load_balancer("owner"))
    ip = await wait_for_ip(kube, namespace, "owner")
    thief = load_balancer("thief")
    thief["metadata"]["annotations"] = {"service.citrix.com/frontend-ip": ip}
    await kube.create(SERVICES, namespace, thief)
    await eventually(lambda: vip_state(kube, namespace, "thief"), what="thief waits")
    uid = (await kube.get(SERVICES, namespace, "thief"))["metadata"]["uid"]
    holder = {"kind": "Service", "namespace": namespace, "name": "thief", "uid": uid}
    async with ShownAddresses(kube, namespace) as watch:
        await kube.patch(VIP_ADDRESSES, None, ip, {"spec": {"holders": [holder]}})
        await kube.delete(VIPS, namespace, "owner")
        await eventually(lambda: vip_state(kube, namespace, "owner"), what="owner's Vip again")
        await kube.delete(SERVICES, namespace, "owner")
        assert await wait_for_ip(kube, namespace, "thief") == ip
    assert not watch.violations, watch.violations


async def test_a_record_edited_to_name_a_waiting_service_is_not_leaked(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    await start_lbctl('["10.77.9.51"]')
    await kube.create(SERVICES, namespace, load_balancer("owner"))
    ip = await wait_for_ip(kube, namespace, "owner")
    await kube.create(SERVICES, namespace, load_balancer("waiter"))
    await eventually(lambda: vip_state(kube, namespace, "waiter"), what="waiter waits")
    uid = (await kube.get(SERVICES, namespace, "waiter"))["metadata"]["uid"]
    holder = {"kind": "Service", "namespace": namespace, "name": "waiter", "uid": uid}
    await kube.patch(VIP_ADDRESSES, None, ip, {"spec": {"holders": [holder]}})
    await kube.delete(SERVICES, namespace, "owner")
    assert await wait_for_ip(kube, namespace, "waiter") == ip
    assert not await leaked_records(kube, namespace)


async def test_a_class_scoped_restart_writes_nothing_and_records_keep_the_class(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    first = await start_lbctl('["10.77.9.52"]', load_balancer_class="lbctl.io/x")
    body = load_balancer("x")
    body["spec"]["loadBalancerClass"] = "lbctl.io/x"
    await kube.create(SERVICES, namespace, body)
    ip = await wait_for_ip(kube, namespace, "x")
    record = await kube.get(VIP_ADDRESSES, None, ip)
    assert record["spec"]["holders"][0]["loadBalancerClass"] == "lbctl.io/x"
    await first.stop()
    second = await start_lbctl('["10.77.9.52"]', load_balancer_class="lbctl.io/x")
    queue = second.runtime.queue
    await eventually(second.runtime.leading.is_set, what="leading")
    await eventually(lambda: len(queue) == 0 and queue.processing == 0, what="queue idle")
    writes = {c: n for c, n in second.client.calls.items() if c[1] in ("create", "patch", "delete")}
    assert writes == {}, writes


async def test_a_record_edited_to_name_another_service_keeps_the_address_taken(
    kube: KubeClient, namespace: str, second_namespace: str, start_lbctl: StartLbctl
) -> None:
    """Two instances scoped by namespace share one pool; the second knows the first's
    addresses only from the records.  a shows .1 and b .2; c (second namespace) waits.  The
    record of .1 is edited by hand to name b: b's instance must not delete it as b's unused
    record (the address would be free while a shows it, and c would get it)."""
    pool = '["10.77.33.0/30"]'
    first = await start_lbctl(pool, namespace=namespace)
    second = await start_lbctl(pool, namespace=second_namespace)
    await kube.create(SERVICES, namespace, load_balancer("a"))
    ip_a = await wait_for_ip(kube, namespace, "a")
    await kube.create(SERVICES, namespace, load_balancer("b"))
    await wait_for_ip(kube, namespace, "b")
    await kube.create(SERVICES, second_namespace, load_balancer("c"))
    assert await vip_state(kube, second_namespace, "c") in (None, "Pending")

    async def old_enough() -> bool:  # past the age under which a record is never pruned
        record = await kube.get(VIP_ADDRESSES, None, ip_a)
        created = datetime.datetime.fromisoformat(record["metadata"]["creationTimestamp"])
        return (datetime.datetime.now(datetime.UTC) - created).total_seconds() > PRUNE_AFTER + 1

    await eventually(old_enough, within=PRUNE_AFTER + 10, what="the record is old enough")
    uid_b = (await kube.get(SERVICES, namespace, "b"))["metadata"]["uid"]
    holder = {"kind": "Service", "namespace": namespace, "name": "b", "uid": uid_b}
    async with ShownAddresses(kube, None) as watch:
        await settled(first, lambda: kube.patch(VIP_ADDRESSES, None, ip_a,
                                                {"spec": {"holders": [holder]}}))  # fmt: skip
        await settled(second, lambda: kube.create(SERVICES, second_namespace, load_balancer("d")))
    assert shown_ip(await kube.get(SERVICES, namespace, "a")) == ip_a
    assert shown_ip(await kube.get(SERVICES, second_namespace, "c")) is None
    record = await kube.get(VIP_ADDRESSES, None, ip_a)
    assert [h["name"] for h in record["spec"]["holders"]] == ["b"]
    assert not watch.violations, watch.violations


FRONTEND_IP = "service.citrix.com/frontend-ip"


def requesting(name: str, address: str) -> JSON:
    service = load_balancer(name)
    service["metadata"]["annotations"] = {FRONTEND_IP: address}
    return service


async def test_a_claimer_that_leaves_a_reservation_leaves_no_record_behind(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """claimer takes the address of reservation Vip kept (.1), then asks for .5 and moves;
    kept is deleted.  claimer's record of .1 goes (a reservation Vip shows nothing, so it is
    no reason to keep the record), and a Service asking for .1 gets it."""
    running = await start_lbctl('["10.77.42.0/29"]')
    reservation = {"apiVersion": "ipam.citrix.com/v1", "kind": "Vip",
                   "metadata": {"name": "kept"}, "spec": {"ipaddress": "10.77.42.1"}}  # fmt: skip
    await kube.create(VIPS, namespace, reservation)
    await kube.create(SERVICES, namespace, requesting("claimer", "10.77.42.1"))
    assert await wait_for_ip(kube, namespace, "claimer") == "10.77.42.1"
    patch = {"metadata": {"annotations": {FRONTEND_IP: "10.77.42.5"}}}
    await kube.patch(SERVICES, namespace, "claimer", patch)

    async def moved() -> bool:
        return shown_ip(await kube.get(SERVICES, namespace, "claimer")) == "10.77.42.5"

    await eventually(moved, what="claimer moved to .5")
    await settled(running, lambda: kube.delete(VIPS, namespace, "kept"))
    await kube.create(SERVICES, namespace, requesting("late", "10.77.42.1"))

    async def record_holders() -> list[str]:
        with contextlib.suppress(NotFound):
            record = await kube.get(VIP_ADDRESSES, None, "10.77.42.1")
            return [h["name"] for h in record["spec"]["holders"]]
        return []

    assert await wait_for_ip(kube, namespace, "late", within=25) == "10.77.42.1", (
        await record_holders()
    )


async def test_a_vip_edited_to_name_another_service_goes_with_its_own_service(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """Vip a's spec.service is edited by hand to say b; then Service a is deleted.  The Vip
    lbctl made for a (its name says so) goes with it, and the waiting b gets the address."""
    await start_lbctl('["10.77.35.7"]')
    ip = await a_holds_b_waits(kube, namespace)
    async with ShownAddresses(kube, namespace) as watch:
        await kube.patch(VIPS, namespace, "a", {"spec": {"service": "b"}})
        await kube.delete(SERVICES, namespace, "a")
        assert await wait_for_ip(kube, namespace, "b") == ip
    assert not watch.violations, watch.violations


async def test_a_vip_edited_to_name_another_service_is_written_back_while_its_own_lives(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """Vip a's spec.service is edited by hand to say b while Service a lives: lbctl writes it
    back (it retried creating a Vip that exists, once a second, for ever), a keeps its
    address, and the waiting b does not get it."""
    await start_lbctl('["10.77.35.8"]')
    ip = await a_holds_b_waits(kube, namespace)
    async with ShownAddresses(kube, namespace) as watch:
        await kube.patch(VIPS, namespace, "a", {"spec": {"service": "b"}})

        async def written_back() -> bool:
            vip = await kube.get(VIPS, namespace, "a")
            return bool(vip["spec"]["service"] == "a" and vip["spec"]["ipaddress"] == ip)

        await eventually(written_back, what="Vip a names a again")
    assert shown_ip(await kube.get(SERVICES, namespace, "a")) == ip
    assert shown_ip(await kube.get(SERVICES, namespace, "b")) is None
    assert not watch.violations, watch.violations


async def a_holds_b_waits(kube: KubeClient, namespace: str) -> str:
    """In a one-address pool: a gets the address, b waits for it; the address."""
    await kube.create(SERVICES, namespace, load_balancer("a"))
    ip = await wait_for_ip(kube, namespace, "a")
    await kube.create(SERVICES, namespace, load_balancer("b"))
    await eventually(lambda: vip_state(kube, namespace, "b"), what="b waits")
    return ip


async def test_the_checker_tells_a_duplicate_lbctl_could_have_seen_from_a_race(
    kube: KubeClient, namespace: str, control_plane: LocalControlPlane
) -> None:
    """Negative control of the race allowance: lbctl's Service cache trails by hand (it has
    not seen api, another controller's Service that shows X, created after web was last
    written) and lbctl shows X on web beside api.  No edit raced that write (api existed
    and showed X before lbctl read anything), so it is a violation, not a race."""
    client = KubeClient(await api_client_from(str(control_plane.kubeconfig)))
    try:
        settings = Settings(
            pools=parse_vip_range('["10.77.12.1"]'), kubeconfig=str(control_plane.kubeconfig)
        )
        runtime = app.build(settings, client)
        async with ShownAddresses(kube, namespace) as watch:
            await kube.create(SERVICES, namespace, load_balancer("web"))
            for informer in (runtime.services, runtime.vips, runtime.address_records):
                await informer.relist()
            api = load_balancer("api", loadBalancerClass="example.com/other")
            await kube.create(SERVICES, namespace, api)
            status = {"loadBalancer": {"ingress": [{"ip": "10.77.12.1"}]}}
            await kube.patch(SERVICES, namespace, "api", {"status": status}, subresource="status")
            await eventually(lambda: watch.events >= 3, what="the checker saw api show X")
            await runtime.service_reconciler.reconcile(f"{namespace}/web")
            assert shown_ip(await kube.get(SERVICES, namespace, "web")) == "10.77.12.1"
            await eventually(lambda: watch.violations, what="the duplicate reported")
        assert not watch.raced, watch.raced
    finally:
        await client.close()
