"""Add, update, delete and read single objects; the appliance's validation errors."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest

from lbctl.nitro.simulator import Simulator
from tests.simulator.conftest import add, assert_error, get

VS = {"name": "web", "servicetype": "HTTP", "ipv46": "10.0.0.1", "port": 80}


async def test_add_then_get_shows_defaults_and_string_numbers(nitro: httpx.AsyncClient) -> None:
    response = await add(nitro, "lbvserver", VS)
    assert response.status_code == 201
    assert response.content == b""  # the appliance answers an add with an empty body
    data = (await get(nitro, "lbvserver/web")).json()
    (vs,) = data["lbvserver"]
    assert vs["lbmethod"] == "LEASTCONNECTION"
    assert vs["persistencetype"] == "NONE"
    assert vs["timeout"] == 2
    assert vs["port"] == 80
    assert vs["clttimeout"] == "180"  # a number sent as a string, as real appliances do
    assert vs["curstate"] == "DOWN"
    assert vs["state"] == "ENABLED"


async def test_duplicate_add_is_409_273(nitro: httpx.AsyncClient) -> None:
    await add(nitro, "lbvserver", VS)
    data = assert_error(await add(nitro, "lbvserver", VS), 409, 273)
    assert data["message"] == "Resource already exists [name, web]"


async def test_update_keeps_immutable_fields(nitro: httpx.AsyncClient) -> None:
    await add(nitro, "lbvserver", VS)
    change = {"name": "web", "port": 8080, "servicetype": "TCP", "lbmethod": "roundrobin"}
    response = await nitro.put("/nitro/v1/config/lbvserver/web", json={"lbvserver": change})
    assert response.status_code == 200
    assert response.json()["errorcode"] == 0
    (vs,) = (await get(nitro, "lbvserver/web")).json()["lbvserver"]
    assert (vs["port"], vs["servicetype"], vs["lbmethod"]) == (80, "HTTP", "ROUNDROBIN")


async def test_update_of_missing_object_is_404(nitro: httpx.AsyncClient) -> None:
    response = await nitro.put(
        "/nitro/v1/config/lbvserver/nope", json={"lbvserver": {"name": "nope", "comment": "x"}}
    )
    assert_error(response, 404, 258)


async def test_idempotent_add_creates_or_updates(nitro: httpx.AsyncClient) -> None:
    for comment in ("one", "two"):
        response = await nitro.post(
            "/nitro/v1/config/lbvserver",
            params={"idempotent": "yes"},
            json={"lbvserver": {**VS, "comment": comment}},
        )
        assert response.status_code == 201
    (vs,) = (await get(nitro, "lbvserver/web")).json()["lbvserver"]
    assert vs["comment"] == "two"


async def test_delete_and_missing(nitro: httpx.AsyncClient, sim: Simulator) -> None:
    await add(nitro, "lbvserver", VS)
    assert (await nitro.delete("/nitro/v1/config/lbvserver/web")).status_code == 200
    assert sim.objects("lbvserver") == []
    data = assert_error(await nitro.delete("/nitro/v1/config/lbvserver/web"), 404, 258)
    assert data["message"] == "No such resource [name, web]"
    assert_error(await get(nitro, "lbvserver/web"), 404, 258)


async def test_get_with_nothing_omits_the_key(nitro: httpx.AsyncClient) -> None:
    data = (await get(nitro, "lbvserver")).json()
    assert data == {"errorcode": 0, "message": "Done", "severity": "NONE"}


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("k8s-web_80_lbv_abc", True),
        ("a b#c.d:e@f=g-h", True),
        ("_leading_underscore", True),
        ("x" * 127, True),
        ("x" * 128, False),
        ("-leading-dash", False),
        ("slash/inside", False),
        ("percent%", False),
        ("", False),
    ],
)
async def test_name_rules_1075(nitro: httpx.AsyncClient, name: str, ok: bool) -> None:
    response = await add(nitro, "lbvserver", {**VS, "name": name, "port": 0})
    if ok:
        assert response.status_code == 201, response.text
    else:
        assert_error(response, 599, 1075)


async def test_name_in_path_encoded_once_or_twice(nitro: httpx.AsyncClient) -> None:
    name = "my vs:1"
    await add(nitro, "lbvserver", {**VS, "name": name})
    for path in (quote(name, safe=""), quote(quote(name, safe=""), safe="")):
        (vs,) = (await get(nitro, f"lbvserver/{path}")).json()["lbvserver"]
        assert vs["name"] == name


@pytest.mark.parametrize(
    ("obj", "code"),
    [
        pytest.param({**VS, "colour": "red"}, 1090, id="unknown-attribute"),
        pytest.param({**VS, "curstate": "UP"}, 1090, id="read-only-attribute"),
        pytest.param({**VS, "lbmethod": "FASTEST"}, 1097, id="bad-enum"),
        pytest.param({**VS, "port": 70000}, 1097, id="port-range"),
        pytest.param({**VS, "port": "eighty"}, 1097, id="port-not-number"),
        pytest.param({"name": "x", "port": 80}, 1095, id="missing-servicetype"),
        pytest.param({**VS, "ipv46": "10.0.0.999"}, 278, id="bad-ip"),
    ],
)
async def test_invalid_adds_are_599(
    nitro: httpx.AsyncClient, obj: dict[str, Any], code: int
) -> None:
    assert_error(await add(nitro, "lbvserver", obj), 599, code)


async def test_numbers_as_strings_accepted(nitro: httpx.AsyncClient) -> None:
    assert (
        await add(nitro, "lbvserver", {**VS, "port": "80", "clttimeout": "30"})
    ).status_code == 201
    (vs,) = (await get(nitro, "lbvserver/web")).json()["lbvserver"]
    assert (vs["port"], vs["clttimeout"]) == (80, "30")


async def test_same_address_port_and_protocol_conflicts(nitro: httpx.AsyncClient) -> None:
    await add(nitro, "lbvserver", VS)
    assert_error(await add(nitro, "lbvserver", {**VS, "name": "other"}), 599, 304)
    udp = {**VS, "name": "dns", "servicetype": "UDP"}
    assert (await add(nitro, "lbvserver", udp)).status_code == 201  # UDP shares the port


async def test_enable_disable_actions(nitro: httpx.AsyncClient, sim: Simulator) -> None:
    await add(nitro, "lbvserver", VS)
    response = await nitro.post(
        "/nitro/v1/config/lbvserver",
        params={"action": "disable"},
        json={"lbvserver": {"name": "web"}},
    )
    assert response.status_code == 200
    (vs,) = sim.objects("lbvserver")
    assert (vs["state"], vs["curstate"]) == ("DISABLED", "OUT OF SERVICE")
    await nitro.post(
        "/nitro/v1/config/lbvserver",
        params={"action": "enable"},
        json={"lbvserver": {"name": "web"}},
    )
    assert sim.objects("lbvserver")[0]["state"] == "ENABLED"


async def test_rename_carries_bindings(nitro: httpx.AsyncClient, sim: Simulator) -> None:
    await add(nitro, "lbvserver", VS)
    await add(nitro, "servicegroup", {"servicegroupname": "sg", "servicetype": "HTTP"})
    await add(nitro, "lbvserver_servicegroup_binding", {"name": "web", "servicegroupname": "sg"})
    response = await nitro.post(
        "/nitro/v1/config/lbvserver",
        params={"action": "rename"},
        json={"lbvserver": {"name": "web", "newname": "web2"}},
    )
    assert response.status_code == 200
    assert [v["name"] for v in sim.objects("lbvserver")] == ["web2"]
    assert sim.objects("lbvserver_servicegroup_binding")[0]["name"] == "web2"


async def test_save_config_is_counted(nitro: httpx.AsyncClient, sim: Simulator) -> None:
    response = await nitro.post(
        "/nitro/v1/config/nsconfig", params={"action": "save"}, json={"nsconfig": {}}
    )
    assert response.status_code == 200
    assert sim.saves == 1


async def test_unknown_resource_is_400(nitro: httpx.AsyncClient) -> None:
    assert_error(await get(nitro, "csvserver"), 400, 1266)


async def test_payload_without_resource_key_is_parse_error(nitro: httpx.AsyncClient) -> None:
    response = await nitro.post("/nitro/v1/config/lbvserver", json={"server": {"name": "x"}})
    assert_error(response, 400, 1238)
    response = await nitro.post("/nitro/v1/config/lbvserver", content=b"{not json")
    assert_error(response, 400, 1238)
