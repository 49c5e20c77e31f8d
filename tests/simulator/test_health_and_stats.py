"""Member health from the control API, rolled up into config GETs and the stat/ endpoints."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from lbctl.nitro.simulator import Simulator
from tests.simulator.conftest import add, assert_error, get

MEMBER = "servicegroup_servicegroupmember_binding"


async def bind(c: httpx.AsyncClient, resource: str, obj: Any) -> None:
    response = await c.post(f"/nitro/v1/config/{resource}", json={resource: obj})
    assert response.status_code == 201, response.text


async def stat(c: httpx.AsyncClient, path: str, **params: str) -> Any:
    response = await c.get(f"/nitro/v1/stat/{path}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def mark(c: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await c.put("/simulator/members", json=body)


@pytest.fixture
async def vs(nitro: httpx.AsyncClient) -> str:
    """vs -> sg with two members, both UP."""
    await add(
        nitro, "lbvserver", {"name": "vs", "servicetype": "HTTP", "ipv46": "10.0.0.1", "port": 80}
    )
    await add(nitro, "servicegroup", {"servicegroupname": "sg", "servicetype": "HTTP"})
    await bind(nitro, "lbvserver_servicegroup_binding", {"name": "vs", "servicegroupname": "sg"})
    for ip in ("10.1.0.1", "10.1.0.2"):
        await bind(nitro, MEMBER, {"servicegroupname": "sg", "ip": ip, "port": 8080})
    return "vs"


async def test_servicegroup_shows_state_attributes(nitro: httpx.AsyncClient, vs: str) -> None:
    (sg,) = (await get(nitro, "servicegroup/sg")).json()["servicegroup"]
    assert (sg["state"], sg["servicegroupeffectivestate"], sg["monstate"]) == (
        "ENABLED",
        "UP",
        "ENABLED",
    )
    assert sg["healthmonitor"] == "YES"
    members = (await get(nitro, f"{MEMBER}/sg")).json()[MEMBER]
    assert [m["svrstate"] for m in members] == ["UP", "UP"]


async def test_all_members_down_takes_the_vserver_down(nitro: httpx.AsyncClient, vs: str) -> None:
    (row,) = (await stat(nitro, "lbvserver/vs"))["lbvserver"]
    assert (row["state"], row["vslbhealth"], row["actsvcs"], row["inactsvcs"]) == ("UP", 100, 2, 0)
    assert row["tothits"] == 0
    assert row["primaryipaddress"] == "10.0.0.1"
    assert (await mark(nitro, servicegroupname="sg", ip="10.1.0.1", svrstate="DOWN")).json() == {
        "matched": 1
    }
    (row,) = (await stat(nitro, "lbvserver/vs"))["lbvserver"]
    assert (row["state"], row["vslbhealth"], row["actsvcs"], row["inactsvcs"]) == ("UP", 50, 1, 1)
    (sg,) = (await stat(nitro, "servicegroup/sg"))["servicegroup"]
    assert sg["state"] == "PARTIAL-UP"
    assert (await mark(nitro, servicegroupname="sg", svrstate="DOWN")).json() == {"matched": 2}
    (row,) = (await stat(nitro, "lbvserver/vs"))["lbvserver"]
    assert (row["state"], row["vslbhealth"], row["actsvcs"]) == ("DOWN", 0, 0)
    (cfg,) = (await get(nitro, "lbvserver/vs")).json()["lbvserver"]
    assert (cfg["curstate"], cfg["health"], cfg["activeservices"]) == ("DOWN", "0", "0")
    (sg,) = (await get(nitro, "servicegroup/sg")).json()["servicegroup"]
    assert sg["servicegroupeffectivestate"] == "DOWN"
    members = (await get(nitro, f"{MEMBER}/sg")).json()[MEMBER]
    assert [m["svrstate"] for m in members] == ["DOWN", "DOWN"]
    await mark(nitro, servicegroupname="sg", port=8080, svrstate="UP")
    (row,) = (await stat(nitro, "lbvserver/vs"))["lbvserver"]
    assert (row["state"], row["vslbhealth"]) == ("UP", 100)


async def test_statbindings_lists_members(nitro: httpx.AsyncClient, vs: str) -> None:
    await mark(nitro, servicegroupname="sg", ip="10.1.0.2", svrstate="DOWN")
    (sg,) = (await stat(nitro, "servicegroup/sg", statbindings="yes"))["servicegroup"]
    states = {(m["ip"], m["port"]): m["state"] for m in sg["servicegroupmember"]}
    assert states == {("10.1.0.1", 8080): "UP", ("10.1.0.2", 8080): "DOWN"}


async def test_monitoring_off_ignores_probe_marks(nitro: httpx.AsyncClient, vs: str) -> None:
    await mark(nitro, servicegroupname="sg", svrstate="DOWN")
    response = await nitro.put(
        "/nitro/v1/config/servicegroup",
        json={"servicegroup": {"servicegroupname": "sg", "monstate": "disabled"}},
    )
    assert response.status_code == 200, response.text
    (sg,) = (await get(nitro, "servicegroup/sg")).json()["servicegroup"]
    assert (sg["monstate"], sg["servicegroupeffectivestate"]) == ("DISABLED", "UP")


async def test_set_servicegroup_monstate_of_one_monitor(nitro: httpx.AsyncClient, vs: str) -> None:
    mb = "servicegroup_lbmonitor_binding"
    await bind(nitro, mb, {"servicegroupname": "sg", "monitor_name": "http"})
    body = {
        "servicegroup": {
            "servicegroupname": "sg",
            "monitor_name_svc": "http",
            "monstate": "DISABLED",
        }
    }
    assert (await nitro.put("/nitro/v1/config/servicegroup", json=body)).status_code == 200
    (binding,) = (await get(nitro, f"{mb}/sg")).json()[mb]
    assert binding["monstate"] == "DISABLED"
    body["servicegroup"]["monitor_name_svc"] = "tcp"
    assert_error(await nitro.put("/nitro/v1/config/servicegroup", json=body), 404, 258)


async def test_disabled_vserver_and_unknown_names(nitro: httpx.AsyncClient, vs: str) -> None:
    await nitro.post(
        "/nitro/v1/config/lbvserver",
        params={"action": "disable"},
        json={"lbvserver": {"name": "vs"}},
    )
    (row,) = (await stat(nitro, "lbvserver"))["lbvserver"]
    assert row["state"] == "OUT OF SERVICE"
    assert_error(await nitro.get("/nitro/v1/stat/lbvserver/nope"), 404, 258)
    assert_error(await nitro.get("/nitro/v1/stat/cmvserver"), 400, 1266)
    assert (await mark(nitro, servicegroupname="nope", svrstate="DOWN")).status_code == 404
    assert (await mark(nitro, servicegroupname="sg", svrstate="SIDEWAYS")).status_code == 400


async def test_service_and_its_vserver_binding(nitro: httpx.AsyncClient, sim: Simulator) -> None:
    await add(
        nitro, "lbvserver", {"name": "vs2", "servicetype": "TCP", "ipv46": "10.0.0.2", "port": 443}
    )
    svc = {"name": "svc1", "ip": "10.2.0.1", "servicetype": "TCP", "port": 443}
    assert (await add(nitro, "service", svc)).status_code == 201
    assert sim.objects("server")[0]["name"] == "10.2.0.1"  # auto-created, as for members
    await bind(nitro, "lbvserver_service_binding", {"name": "vs2", "servicename": "svc1"})
    await bind(nitro, "service_lbmonitor_binding", {"name": "svc1", "monitor_name": "tcp"})
    (b,) = (await get(nitro, "lbvserver_service_binding/vs2")).json()["lbvserver_service_binding"]
    assert (b["curstate"], b["vsvrbindsvcip"], b["vsvrbindsvcport"]) == ("UP", "10.2.0.1", 443)
    (s,) = (await get(nitro, "service/svc1")).json()["service"]
    assert (s["svrstate"], s["ipaddress"], s["healthmonitor"]) == ("UP", "10.2.0.1", "YES")
    await mark(nitro, servicename="svc1", svrstate="DOWN")
    (row,) = (await stat(nitro, "service/svc1"))["service"]
    assert (row["state"], row["primaryport"]) == ("DOWN", 443)
    (row,) = (await stat(nitro, "lbvserver/vs2"))["lbvserver"]
    assert (row["state"], row["vslbhealth"]) == ("DOWN", 0)
    assert_error(await nitro.delete("/nitro/v1/config/server/10.2.0.1"), 599, 1070)
    assert (await nitro.delete("/nitro/v1/config/service/svc1")).status_code == 200
    assert (
        sim.objects("lbvserver_service_binding") == sim.objects("service_lbmonitor_binding") == []
    )


async def test_doubled_slash_is_accepted(nitro: httpx.AsyncClient, sim: Simulator, vs: str) -> None:
    response = await nitro.delete(
        "/nitro/v1/config//lbvserver_servicegroup_binding/vs",
        params={"args": "servicegroupname:sg"},
    )
    assert response.status_code == 200, response.text
    assert sim.objects("lbvserver_servicegroup_binding") == []
    assert (await nitro.get("/nitro/v1/config/lbvserver//vs")).json()["lbvserver"][0][
        "name"
    ] == "vs"
