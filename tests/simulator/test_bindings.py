"""Members, vserver and monitor bindings; implicit servers; cascading deletes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from lbctl.nitro.simulator import Simulator
from tests.simulator.conftest import add, assert_error, get

MEMBER = "servicegroup_servicegroupmember_binding"


async def bind(
    c: httpx.AsyncClient, resource: str, obj: Any, *, put: bool = False
) -> httpx.Response:
    method = c.put if put else c.post
    return await method(f"/nitro/v1/config/{resource}", json={resource: obj})


@pytest.fixture
async def sg(nitro: httpx.AsyncClient) -> str:
    await add(nitro, "servicegroup", {"servicegroupname": "sg", "servicetype": "HTTP"})
    await add(
        nitro, "lbvserver", {"name": "vs", "servicetype": "HTTP", "ipv46": "10.0.0.1", "port": 80}
    )
    return "sg"


@pytest.mark.parametrize("put", [False, True], ids=["POST", "PUT"])
async def test_bind_by_ip_auto_creates_server_and_unbind_keeps_it(
    nitro: httpx.AsyncClient, sim: Simulator, sg: str, put: bool
) -> None:
    member = {"servicegroupname": sg, "ip": "10.1.0.5", "port": 30080, "weight": 7}
    response = await bind(nitro, MEMBER, member, put=put)
    assert response.status_code == 201
    assert [s["name"] for s in sim.objects("server")] == ["10.1.0.5"]
    (got,) = (await get(nitro, f"{MEMBER}/{sg}")).json()[MEMBER]
    assert (got["ip"], got["port"], got["weight"], got["servername"]) == (
        "10.1.0.5",
        30080,
        "7",
        "10.1.0.5",
    )
    response = await nitro.delete(
        f"/nitro/v1/config/{MEMBER}/{sg}", params={"args": "ip:10.1.0.5,port:30080"}
    )
    assert response.status_code == 200
    assert (await get(nitro, f"{MEMBER}/{sg}")).json().get(MEMBER) is None
    assert [s["name"] for s in sim.objects("server")] == ["10.1.0.5"]


async def test_bind_by_servername(nitro: httpx.AsyncClient, sim: Simulator, sg: str) -> None:
    await add(nitro, "server", {"name": "node-a", "ipaddress": "10.1.0.6"})
    assert (
        await bind(nitro, MEMBER, {"servicegroupname": sg, "servername": "node-a", "port": 80})
    ).status_code == 201
    # binding by the same IP reuses the named server instead of creating another
    assert_error(
        await bind(nitro, MEMBER, {"servicegroupname": sg, "ip": "10.1.0.6", "port": 80}), 409, 273
    )
    assert [s["name"] for s in sim.objects("server")] == ["node-a"]
    response = await nitro.delete(
        f"/nitro/v1/config/{MEMBER}/{sg}", params={"args": "servername:node-a,port:80"}
    )
    assert response.status_code == 200


async def test_ip_and_servername_together_is_1092(nitro: httpx.AsyncClient, sg: str) -> None:
    member = {"servicegroupname": sg, "ip": "10.1.0.5", "servername": "x", "port": 80}
    assert_error(await bind(nitro, MEMBER, member), 599, 1092)


@pytest.mark.parametrize(
    ("member", "status", "code"),
    [
        pytest.param(
            {"servicegroupname": "missing", "ip": "10.1.0.5", "port": 80}, 404, 258, id="no-group"
        ),
        pytest.param(
            {"servicegroupname": "sg", "servername": "ghost", "port": 80}, 404, 258, id="no-server"
        ),
        pytest.param(
            {"servicegroupname": "sg", "ip": "10.1.0.5", "port": 80, "weight": 101},
            599,
            1097,
            id="weight",
        ),
        pytest.param({"servicegroupname": "sg", "ip": "10.1.0.5"}, 599, 1095, id="no-port"),
    ],
)
async def test_bad_member_binds(
    nitro: httpx.AsyncClient, sg: str, member: dict[str, Any], status: int, code: int
) -> None:
    assert_error(await bind(nitro, MEMBER, member), status, code)


async def test_duplicate_member_is_409(nitro: httpx.AsyncClient, sg: str) -> None:
    member = {"servicegroupname": sg, "ip": "10.1.0.5", "port": 80}
    await bind(nitro, MEMBER, member)
    assert_error(await bind(nitro, MEMBER, member), 409, 273)


async def test_unbind_missing_member_is_404(nitro: httpx.AsyncClient, sg: str) -> None:
    response = await nitro.delete(
        f"/nitro/v1/config/{MEMBER}/{sg}", params={"args": "ip:10.9.9.9,port:80"}
    )
    assert_error(response, 404, 258)


async def test_server_in_use_cannot_be_deleted(nitro: httpx.AsyncClient, sg: str) -> None:
    await bind(nitro, MEMBER, {"servicegroupname": sg, "ip": "10.1.0.5", "port": 80})
    assert_error(await nitro.delete("/nitro/v1/config/server/10.1.0.5"), 599, 1070)
    await nitro.delete(f"/nitro/v1/config/{MEMBER}/{sg}", params={"args": "ip:10.1.0.5,port:80"})
    assert (await nitro.delete("/nitro/v1/config/server/10.1.0.5")).status_code == 200


async def test_vserver_binding_and_type_mismatch(
    nitro: httpx.AsyncClient, sim: Simulator, sg: str
) -> None:
    vsb = "lbvserver_servicegroup_binding"
    assert (await bind(nitro, vsb, {"name": "vs", "servicegroupname": sg})).status_code == 201
    assert_error(await bind(nitro, vsb, {"name": "vs", "servicegroupname": sg}), 409, 273)
    await add(nitro, "servicegroup", {"servicegroupname": "udp", "servicetype": "UDP"})
    assert_error(await bind(nitro, vsb, {"name": "vs", "servicegroupname": "udp"}), 599, 1304)
    await bind(nitro, MEMBER, {"servicegroupname": sg, "ip": "10.1.0.5", "port": 80})
    assert sim.objects("lbvserver")[0]["curstate"] == "UP"
    response = await nitro.delete(
        f"/nitro/v1/config/{vsb}/vs", params={"args": f"servicegroupname:{sg}"}
    )
    assert response.status_code == 200
    assert sim.objects(vsb) == []


async def test_deleting_servicegroup_cascades(
    nitro: httpx.AsyncClient, sim: Simulator, sg: str
) -> None:
    await bind(nitro, MEMBER, {"servicegroupname": sg, "ip": "10.1.0.5", "port": 80})
    await bind(nitro, "lbvserver_servicegroup_binding", {"name": "vs", "servicegroupname": sg})
    await bind(
        nitro, "servicegroup_lbmonitor_binding", {"servicegroupname": sg, "monitor_name": "tcp"}
    )
    assert (await nitro.delete(f"/nitro/v1/config/servicegroup/{sg}")).status_code == 200
    for resource in (MEMBER, "lbvserver_servicegroup_binding", "servicegroup_lbmonitor_binding"):
        assert sim.objects(resource) == [], resource
    assert len(sim.objects("server")) == 1  # implicit servers stay behind, as on the appliance
    assert len(sim.objects("lbvserver")) == 1


async def test_deleting_vserver_removes_its_bindings(
    nitro: httpx.AsyncClient, sim: Simulator, sg: str
) -> None:
    await bind(nitro, "lbvserver_servicegroup_binding", {"name": "vs", "servicegroupname": sg})
    assert (await nitro.delete("/nitro/v1/config/lbvserver/vs")).status_code == 200
    assert sim.objects("lbvserver_servicegroup_binding") == []
    assert len(sim.objects("servicegroup")) == 1


async def test_binding_get_of_missing_parent_is_404(nitro: httpx.AsyncClient) -> None:
    assert_error(await get(nitro, f"{MEMBER}/nope"), 404, 258)


async def test_disabled_server_takes_members_out_of_service(
    nitro: httpx.AsyncClient, sim: Simulator, sg: str
) -> None:
    await bind(nitro, "lbvserver_servicegroup_binding", {"name": "vs", "servicegroupname": sg})
    await bind(nitro, MEMBER, {"servicegroupname": sg, "ip": "10.1.0.5", "port": 80})
    assert sim.objects("lbvserver")[0]["curstate"] == "UP"
    response = await nitro.post(
        "/nitro/v1/config/server",
        params={"action": "disable"},
        json={"server": {"name": "10.1.0.5"}},
    )
    assert response.status_code == 200
    assert sim.objects(MEMBER)[0]["svrstate"] == "OUT OF SERVICE"
    assert sim.objects("lbvserver")[0]["curstate"] == "DOWN"


async def test_any_port_star(nitro: httpx.AsyncClient, sim: Simulator) -> None:
    vs = {"name": "any", "servicetype": "ANY", "ipv46": "10.0.0.2", "port": "*"}
    assert (await add(nitro, "lbvserver", vs)).status_code == 201
    assert sim.objects("lbvserver")[0]["port"] == 65535
