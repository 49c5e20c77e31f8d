"""lbmonitor rules: built-ins, response timeout against interval, binding and deleting."""

from __future__ import annotations

import httpx

from tests.simulator.conftest import add, assert_error, get

MON = {"monitorname": "hc", "type": "HTTP", "interval": 10, "resptimeout": 3}
MB = "servicegroup_lbmonitor_binding"


async def test_builtins_exist(nitro: httpx.AsyncClient) -> None:
    names = {m["monitorname"] for m in (await get(nitro, "lbmonitor")).json()["lbmonitor"]}
    assert {"tcp-default", "ping-default", "http", "tcp"} <= names


async def test_add_applies_type_defaults(nitro: httpx.AsyncClient) -> None:
    assert (await add(nitro, "lbmonitor", {"monitorname": "hc", "type": "http"})).status_code == 201
    (mon,) = (await get(nitro, "lbmonitor/hc")).json()["lbmonitor"]
    assert (mon["type"], mon["interval"], mon["resptimeout"]) == ("HTTP", 5, 2)
    assert (mon["httprequest"], mon["respcode"]) == ("HEAD /", ["200"])


async def test_resptimeout_must_be_below_interval_2128(nitro: httpx.AsyncClient) -> None:
    assert_error(await add(nitro, "lbmonitor", {**MON, "resptimeout": 10}), 599, 2128)
    await add(nitro, "lbmonitor", MON)
    response = await nitro.put(
        "/nitro/v1/config/lbmonitor", json={"lbmonitor": {"monitorname": "hc", "interval": 2}}
    )
    assert_error(response, 599, 2128)


async def test_delete_needs_type_and_refuses_builtins(nitro: httpx.AsyncClient) -> None:
    await add(nitro, "lbmonitor", MON)
    assert_error(await nitro.delete("/nitro/v1/config/lbmonitor/hc"), 599, 1095)
    assert_error(
        await nitro.delete("/nitro/v1/config/lbmonitor/tcp-default", params={"args": "type:TCP"}),
        599,
        2132,
    )
    assert (
        await nitro.delete("/nitro/v1/config/lbmonitor/hc", params={"args": "type:HTTP"})
    ).status_code == 200


async def test_bound_monitor_2131_and_double_bind_2133(nitro: httpx.AsyncClient) -> None:
    await add(nitro, "lbmonitor", MON)
    await add(nitro, "servicegroup", {"servicegroupname": "sg", "servicetype": "HTTP"})
    binding = {"servicegroupname": "sg", "monitor_name": "hc"}
    assert (await add(nitro, MB, binding)).status_code == 201
    assert_error(await add(nitro, MB, binding), 599, 2133)
    assert_error(
        await nitro.delete("/nitro/v1/config/lbmonitor/hc", params={"args": "type:HTTP"}), 599, 2131
    )
    response = await nitro.delete(f"/nitro/v1/config/{MB}/sg", params={"args": "monitor_name:hc"})
    assert response.status_code == 200
    assert (
        await nitro.delete("/nitro/v1/config/lbmonitor/hc", params={"args": "type:HTTP"})
    ).status_code == 200


async def test_default_monitor_cannot_be_changed(nitro: httpx.AsyncClient) -> None:
    response = await nitro.put(
        "/nitro/v1/config/lbmonitor",
        json={"lbmonitor": {"monitorname": "tcp-default", "interval": 9}},
    )
    assert_error(response, 599, 2139)
