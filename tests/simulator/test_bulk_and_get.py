"""Bulk payloads under each X-NITRO-ONERROR mode, and the GET options."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from lbctl.nitro.simulator import Simulator
from tests.simulator.conftest import add, assert_error, get

MEMBER = "servicegroup_servicegroupmember_binding"


def vs(name: str, port: int, **extra: Any) -> dict[str, Any]:
    return {"name": name, "servicetype": "TCP", "ipv46": "10.0.0.1", "port": port, **extra}


async def bulk_add(
    c: httpx.AsyncClient, items: list[dict[str, Any]], onerror: str | None
) -> httpx.Response:
    headers = {"X-NITRO-ONERROR": onerror} if onerror else {}
    return await c.post("/nitro/v1/config/lbvserver", json={"lbvserver": items}, headers=headers)


async def test_bulk_all_ok_is_201(nitro: httpx.AsyncClient, sim: Simulator) -> None:
    response = await bulk_add(nitro, [vs("a", 1), vs("b", 2)], None)
    assert response.status_code == 201
    assert [v["name"] for v in sim.objects("lbvserver")] == ["a", "b"]


ITEMS = [vs("a", 1), vs("b", 2, lbmethod="BOGUS"), vs("c", 3)]


@pytest.mark.parametrize(
    ("onerror", "codes", "left"),
    [
        pytest.param("exit", [0, 1097], ["a"], id="exit"),
        pytest.param(None, [0, 1097], ["a"], id="default-is-exit"),
        pytest.param("continue", [0, 1097, 0], ["a", "c"], id="continue"),
        pytest.param("rollback", [0, 1097], [], id="rollback"),
    ],
)
async def test_bulk_failure_is_207(
    nitro: httpx.AsyncClient, sim: Simulator, onerror: str | None, codes: list[int], left: list[str]
) -> None:
    response = await bulk_add(nitro, ITEMS, onerror)
    assert response.status_code == 207
    data = response.json()
    assert (data["errorcode"], data["message"], data["severity"]) == (
        1243,
        "Bulk operation failed",
        "ERROR",
    )
    assert [r["errorcode"] for r in data["response"]] == codes
    assert data["response"][0] == {"errorcode": 0, "message": "Done", "severity": "NONE"}
    assert [v["name"] for v in sim.objects("lbvserver")] == left


async def test_rollback_undoes_implicit_servers(nitro: httpx.AsyncClient, sim: Simulator) -> None:
    await add(nitro, "servicegroup", {"servicegroupname": "sg", "servicetype": "TCP"})
    members = [
        {"servicegroupname": "sg", "ip": "10.1.0.1", "port": 80},
        {"servicegroupname": "sg", "ip": "10.1.0.1", "port": 80},
    ]
    response = await nitro.put(
        f"/nitro/v1/config/{MEMBER}",
        json={MEMBER: members},
        headers={"X-NITRO-ONERROR": "rollback"},
    )
    assert response.status_code == 207
    assert [r["errorcode"] for r in response.json()["response"]] == [0, 273]
    assert sim.objects(MEMBER) == []
    assert sim.objects("server") == []


async def test_bulk_update_is_200_and_rollback_refused(
    nitro: httpx.AsyncClient, sim: Simulator
) -> None:
    await bulk_add(nitro, [vs("a", 1), vs("b", 2)], None)
    updates = {"lbvserver": [{"name": "a", "comment": "x"}, {"name": "b", "comment": "y"}]}
    assert (await nitro.put("/nitro/v1/config/lbvserver", json=updates)).status_code == 200
    assert [v["comment"] for v in sim.objects("lbvserver")] == ["x", "y"]
    response = await nitro.put(
        "/nitro/v1/config/lbvserver", json=updates, headers={"X-NITRO-ONERROR": "rollback"}
    )
    assert_error(response, 599, 1242)


@pytest.fixture
async def three(nitro: httpx.AsyncClient) -> None:
    await bulk_add(
        nitro,
        [vs("a", 1), vs("b", 2, lbmethod="ROUNDROBIN"), vs("c", 3, lbmethod="ROUNDROBIN")],
        None,
    )


@pytest.mark.usefixtures("three")
async def test_filter_attrs_and_count(nitro: httpx.AsyncClient) -> None:
    data = (await get(nitro, "lbvserver", filter="lbmethod:ROUNDROBIN", attrs="name,port")).json()
    assert data["lbvserver"] == [{"name": "b", "port": 2}, {"name": "c", "port": 3}]
    data = (await get(nitro, "lbvserver", filter="lbmethod:ROUNDROBIN,port:3", attrs="name")).json()
    assert data["lbvserver"] == [{"name": "c"}]
    data = (await get(nitro, "lbvserver", filter="name:/^[ab]$/", attrs="name")).json()
    assert data["lbvserver"] == [{"name": "a"}, {"name": "b"}]
    assert (await get(nitro, "lbvserver", count="yes")).json()["lbvserver"] == [{"__count": 3}]
    assert (await get(nitro, "lbvserver", filter="port:9")).json().get("lbvserver") is None
    assert_error(await get(nitro, "lbvserver", filter="colour:red"), 599, 1090)


@pytest.mark.usefixtures("three")
async def test_paging(nitro: httpx.AsyncClient) -> None:
    data = (await get(nitro, "lbvserver", pagesize="2", pageno="2", attrs="name")).json()
    assert data["lbvserver"] == [{"name": "c"}]


async def test_binding_filter_and_bulkbindings(nitro: httpx.AsyncClient) -> None:
    for name in ("sg1", "sg2"):
        await add(nitro, "servicegroup", {"servicegroupname": name, "servicetype": "TCP"})
    members = [
        {"servicegroupname": "sg1", "ip": "10.1.0.1", "port": 80},
        {"servicegroupname": "sg1", "ip": "10.1.0.2", "port": 80},
        {"servicegroupname": "sg2", "ip": "10.1.0.1", "port": 81},
    ]
    assert (await add(nitro, MEMBER, members)).status_code == 201
    data = (await get(nitro, f"{MEMBER}/sg1", filter="ip:10.1.0.2,port:80")).json()
    assert [m["ip"] for m in data[MEMBER]] == ["10.1.0.2"]
    assert_error(await get(nitro, MEMBER), 599, 1095)  # all bindings need bulkbindings=yes
    data = (await get(nitro, MEMBER, bulkbindings="yes")).json()
    assert len(data[MEMBER]) == 3
    assert (await get(nitro, MEMBER, bulkbindings="yes", count="yes")).json()[MEMBER] == [
        {"__count": 3}
    ]
