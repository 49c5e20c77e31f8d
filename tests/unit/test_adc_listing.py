"""lbctl's listing of the NetScaler, against the NITRO simulator: read a page at a time
(NITRO's ``pagesize``/``pageno``; pages of two objects here) next to another instance's
objects, and true to what lbctl wrote while it was being read."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from lbctl.adc.plan import Node
from lbctl.nitro.client import Credentials, NitroClient
from lbctl.nitro.simulator import Simulator
from lbctl.reconcile.adc import AdcSync
from lbctl.reconcile.adc_health import AdcHealth
from tests.peer_check_netscaler import CRITICAL, check_netscaler

NODES = [Node(f"n{i}", f"10.0.0.{i}", ready=True, excluded=False) for i in (1, 2, 3)]
PASSWORD = "nsroot"


def service(name: str) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "shop", "name": name, "annotations": {}},
        "spec": {
            "type": "LoadBalancer",
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}],
        },
    }


@pytest.fixture
def sim() -> Simulator:
    return Simulator(username="nsroot", password=PASSWORD)


@pytest.fixture
async def url(sim: Simulator) -> AsyncIterator[str]:
    async with sim.serve() as base:
        yield base


@pytest.fixture
async def client(url: str) -> AsyncIterator[NitroClient]:
    nitro = NitroClient(url, Credentials("nsroot", PASSWORD), page_size=2)
    yield nitro
    await nitro.aclose()


@pytest.fixture
async def configured(client: NitroClient) -> dict[str, str]:
    """Five Services of lbctl "k8s" and two of another instance on one NetScaler; lbctl's
    lb vservers (name → Service)."""
    ours = AdcSync(client, "k8s", lambda: NODES, lambda _: [])
    theirs = AdcSync(client, "other", lambda: NODES, lambda _: [])
    for i in range(5):
        assert (await ours.ensure(service(f"web{i}"), [f"192.0.2.{i + 1}"])).retry is None
    for i in range(2):
        assert (await theirs.ensure(service(f"db{i}"), [f"192.0.2.{i + 11}"])).retry is None
    await ours.refresh()
    vservers = ours.vservers()
    assert len(vservers) == 5
    return vservers


async def test_a_listing_read_in_pages_is_the_whole_listing(
    sim: Simulator, client: NitroClient, configured: dict[str, str]
) -> None:
    sim.requests.clear()
    fresh = AdcSync(client, "k8s", lambda: NODES, lambda _: [])
    owners = await fresh.refresh()
    assert owners == set(configured.values())
    assert fresh.vservers() == configured
    pages = [r.query.get("pageno") for r in sim.requests if r.resource == "lbvserver"]
    assert pages == [None, "4", "3", "2", "1"]  # the count, then 7 vservers 2 a page
    for i in range(5):  # nothing was missed: each Service is as it should be
        outcome = await fresh.ensure(service(f"web{i}"), [f"192.0.2.{i + 1}"])
        assert (outcome.retry, outcome.writes) == (None, 0)


async def test_a_listing_read_again_drops_what_went_and_keeps_what_is_not_ours_out(
    client: NitroClient, configured: dict[str, str]
) -> None:
    """The drift pass reads into the listing in use: what was removed by hand goes from it
    (and is put back), what is someone else's never enters it."""
    sync = AdcSync(client, "k8s", lambda: NODES, lambda _: [])
    await sync.refresh()
    web1 = next(name for name, owner in configured.items() if owner.endswith("web1"))
    web2 = next(name for name, owner in configured.items() if owner.endswith("web2"))
    await client.delete("lbvserver", web2)  # its binding to the service group goes with it
    group = web1.removesuffix("_lbv") + "_sgp"
    member = "servicegroup_servicegroupmember_binding"
    await client.unbind(member, group, {"ip": "10.0.0.2", "port": 30080})
    await client.add("lbvserver", {"name": "k8s-by-hand", "servicetype": "TCP",
                                   "ipv46": "192.0.2.99", "port": 80})  # fmt: skip
    assert await sync.refresh() == set(configured.values())  # web2 keeps its service group
    assert sync.vservers() == {k: v for k, v in configured.items() if k != web2}
    again = await sync.ensure(service("web1"), ["192.0.2.2"])
    assert (again.retry, again.writes) == (None, 1)  # the member, and only it
    again = await sync.ensure(service("web2"), ["192.0.2.3"])
    assert (again.retry, again.writes) == (None, 2)  # the vserver and its binding
    for i in range(5):
        outcome = await sync.ensure(service(f"web{i}"), [f"192.0.2.{i + 1}"])
        assert (outcome.retry, outcome.writes) == (None, 0)


async def test_health_read_in_pages_agrees_with_a_peer_client(
    sim: Simulator, url: str, client: NitroClient, configured: dict[str, str]
) -> None:
    down = next(name for name, owner in configured.items() if owner.endswith("web3"))
    assert sim.set_probe("DOWN", {"servicegroupname": down.removesuffix("_lbv") + "_sgp"}) == 3
    changed: list[str] = []
    sync = AdcSync(client, "k8s", lambda: NODES, lambda _: [])
    await sync.refresh()
    health = AdcHealth(client, sync, changed.append)
    await health.refresh()
    assert sorted(changed) == sorted(configured.values())
    seen = {
        v.name: (v.state, str(v.up), str(v.total))
        for h in health.by_service.values()
        for v in h.vservers
    }
    # check_netscaler reads the same attributes of every lb vserver in one unpaged GET.
    fields = ("curstate", "activeservices", "totalservices")
    code, out = await check_netscaler(
        url, PASSWORD, "-C", "matches", "-o", "lbvserver", "--endpoint", "config",
        "-n", ",".join(fields), "-L", "name", "-w", "UNKNOWN", "-c", "DOWN",
    )  # fmt: skip
    assert code == CRITICAL, out
    readings: dict[str, dict[str, str]] = {}
    for field, name, value in re.findall(r'lbvserver\.(\w+)\[([^]]+)\]: "([^"]*)"', out):
        readings.setdefault(name, {})[field] = value
    peer = {name: tuple(r[f] for f in fields) for name, r in readings.items() if name in seen}
    assert peer == seen
    assert seen[down] == ("DOWN", "0", "3")
    assert {state for name, (state, _, _) in seen.items() if name != down} == {"UP"}


class Gate(httpx.AsyncBaseTransport):
    """Holds requests back: ``hold(test, until)`` makes each request ``test`` accepts wait for
    ``until()`` before it is sent."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._holds: list[tuple[Callable[[httpx.Request], bool], Callable[[], Awaitable[Any]]]] = []

    def hold(
        self, test: Callable[[httpx.Request], bool], until: Callable[[], Awaitable[Any]]
    ) -> None:
        self._holds.append((test, until))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for test, until in self._holds:
            if test(request):
                await until()
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_writes_that_go_on_while_the_listing_is_read_are_in_the_listing_read(
    url: str,
) -> None:
    """A Service's configuration began on the old listing; a drift pass reads the ADC while
    its first write is under way and is done before its next ones.  The new listing has
    them all: configuring the Service again writes nothing (it was "already exists" errors,
    a Warning Event each, for Services created during a drift pass)."""
    gate = Gate()
    nitro = NitroClient(url, Credentials("nsroot", PASSWORD), transport=gate, page_size=2)
    sync = AdcSync(nitro, "k8s", lambda: NODES, lambda _: [])
    await sync.refresh()
    writing, reading, read = asyncio.Event(), asyncio.Event(), asyncio.Event()
    writes = 0

    def first_write(request: httpx.Request) -> bool:
        nonlocal writes
        if request.method != "POST":
            return False
        writes += 1
        return writes == 1

    async def when_read_begins() -> None:
        writing.set()
        await reading.wait()

    async def read_begins() -> None:
        reading.set()

    gate.hold(lambda r: r.method == "GET" and r.url.params.get("pageno") == "1", read_begins)
    gate.hold(first_write, when_read_begins)
    gate.hold(lambda r: r.method == "POST" and writes > 1, read.wait)
    configuring = asyncio.create_task(sync.ensure(service("web"), ["192.0.2.1"]))
    await writing.wait()
    await sync.refresh()
    read.set()
    outcome = await configuring
    assert (outcome.retry, writes) == (None, 4)  # monitor, group, vserver, members+binding
    again = await sync.ensure(service("web"), ["192.0.2.1"])
    assert (again.retry, again.port_errors, again.writes) == (None, {}, 0)
    await nitro.aclose()


async def test_an_object_deleted_while_the_pages_are_read_costs_no_other_its_place(
    url: str, client: NitroClient, configured: dict[str, str]
) -> None:
    """Another tool deletes the first vserver while the second page read is asked for: the
    vservers after it move forward a place, and none of lbctl's may be missed for it (a
    Service whose vserver a drift pass missed got "Resource already exists" and a Warning)."""
    gate = Gate()
    nitro = NitroClient(url, Credentials("nsroot", PASSWORD), transport=gate, page_size=2)
    sync = AdcSync(nitro, "k8s", lambda: NODES, lambda _: [])
    await sync.refresh()
    web0 = next(name for name, owner in configured.items() if owner.endswith("web0"))
    deleted = False

    async def delete_web0() -> None:
        nonlocal deleted
        if not deleted:
            deleted = True
            await client.delete("lbvserver", web0)

    pages_asked = 0

    def second_page(request: httpx.Request) -> bool:
        nonlocal pages_asked
        if request.url.path.endswith("/lbvserver") and "pageno" in request.url.params:
            pages_asked += 1
        return pages_asked == 2

    gate.hold(second_page, delete_web0)
    assert await sync.refresh() == set(configured.values())  # web0 keeps its service group
    assert deleted
    vservers = sync.vservers()
    assert {k: v for k, v in configured.items() if k != web0}.items() <= vservers.items()
    for i in range(1, 5):
        outcome = await sync.ensure(service(f"web{i}"), [f"192.0.2.{i + 1}"])
        assert (outcome.retry, outcome.port_errors, outcome.writes) == (None, {}, 0), i
    await nitro.aclose()


def two_ports(name: str, ports: tuple[int, ...]) -> dict[str, Any]:
    spec = service(name)
    spec["spec"]["ports"] = [
        {"port": port, "protocol": "TCP", "nodePort": 30000 + port} for port in ports
    ]
    return spec


async def test_health_takes_a_vserver_seen_twice_once(url: str, client: NitroClient) -> None:
    """A Service's vserver deleted while a health pass reads the pages moves another to the
    page still to be read: seen twice, it must not stand in for the one that went (the
    Service's health then lists one vserver twice and forgets the other)."""
    sync = AdcSync(client, "k8s", lambda: NODES, lambda _: [])
    assert (await sync.ensure(two_ports("s", (80,)), ["192.0.2.1"])).retry is None
    assert (await sync.ensure(service("y"), ["192.0.2.2"])).retry is None
    assert (await sync.ensure(two_ports("s", (80, 443)), ["192.0.2.1"])).retry is None
    assert (await sync.ensure(service("z"), ["192.0.2.3"])).retry is None
    order = [r["name"] for r in await client.get("lbvserver", attrs=["name"])]
    gone, twice = "k8s-shop_s_80-tcp_lbv", "k8s-shop_s_443-tcp_lbv"
    assert order == [gone, "k8s-shop_y_80-tcp_lbv", twice, "k8s-shop_z_80-tcp_lbv"]
    gate = Gate()
    nitro = NitroClient(url, Credentials("nsroot", PASSWORD), transport=gate, page_size=2)
    changed: list[str] = []
    health = AdcHealth(nitro, sync, changed.append)
    await health.refresh()
    before = health.by_service["shop/s"]
    assert [v.name for v in before.vservers] == [twice, gone]
    deleting = False

    async def delete_gone() -> None:
        nonlocal deleting
        if deleting:
            deleting = False
            await client.delete("lbvserver", gone)

    gate.hold(lambda r: r.url.params.get("pageno") == "1", delete_gone)
    deleting, changed[:] = True, []
    await health.refresh()
    assert not deleting
    assert health.by_service["shop/s"] == before  # not read whole: as it was
    assert "shop/s" not in changed
    await nitro.aclose()


async def test_health_passes_while_the_listing_is_read_again_forget_nothing(
    sim: Simulator, client: NitroClient, configured: dict[str, str]
) -> None:
    """A write that finds the ADC otherwise than listed ("already exists") leaves lbctl
    without a listing until it is read again; a health pass meanwhile knows no vserver of
    lbctl's, which is not that they are all gone: their health stays, and a vserver that
    goes DOWN meanwhile is still said to have gone down."""
    sync = AdcSync(client, "k8s", lambda: NODES, lambda _: [])
    await sync.refresh()
    changed: list[str] = []
    health = AdcHealth(client, sync, changed.append)
    await health.refresh()
    assert set(health.by_service) == set(configured.values())
    await client.add("lbvserver", {"name": "k8s-shop_web9_80-tcp_lbv", "servicetype": "TCP",
                                   "ipv46": "192.0.2.9", "port": 80})  # fmt: skip
    clash = await sync.ensure(service("web9"), ["192.0.2.9"])
    assert "already exists" in str(clash.retry)
    assert not sync.listed  # to be read again
    web3 = next(name for name, owner in configured.items() if owner.endswith("web3"))
    assert sim.set_probe("DOWN", {"servicegroupname": web3.removesuffix("_lbv") + "_sgp"}) == 3
    before, changed[:] = dict(health.by_service), []
    await health.refresh()
    assert (health.by_service, changed) == (before, [])
    await sync.refresh()
    await health.refresh()
    assert changed == ["shop/web3"]
    assert health.went_down == {"shop/web3"}
