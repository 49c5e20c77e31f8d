"""Injected faults seen by a plain HTTP client, and the JSON control API that drives them."""

from __future__ import annotations

import time

import httpx
import pytest

from lbctl.nitro.simulator import Faults, Simulator
from tests.simulator.conftest import add, assert_error, get


async def test_error_rate_one_answers_503_before_doing_anything(
    nitro: httpx.AsyncClient, sim: Simulator
) -> None:
    sim.faults.error_rate = 1.0
    response = await add(nitro, "server", {"name": "s", "ipaddress": "10.0.0.9"})
    assert response.status_code == 503
    sim.faults.error_rate = 0.0
    assert sim.objects("server") == []


@pytest.mark.parametrize("fault", ["outage", "drop_rate"])
async def test_dropped_connection_is_a_transport_error(
    nitro: httpx.AsyncClient, sim: Simulator, fault: str
) -> None:
    setattr(sim.faults, fault, True if fault == "outage" else 1.0)
    with pytest.raises(httpx.TransportError):
        await get(nitro, "lbvserver")
    assert sim.requests[-1].status == 0
    setattr(sim.faults, fault, False if fault == "outage" else 0.0)
    assert (await get(nitro, "lbvserver")).status_code == 200


async def test_latency_delays_each_request(nitro: httpx.AsyncClient, sim: Simulator) -> None:
    sim.faults.latency = 0.2
    started = time.monotonic()
    assert (await get(nitro, "lbvserver")).status_code == 200
    assert time.monotonic() - started >= 0.2


async def test_seed_replays_the_same_faults(nitro: httpx.AsyncClient, sim: Simulator) -> None:
    async def statuses() -> list[int]:
        return [(await get(nitro, "lbvserver")).status_code for _ in range(30)]

    sim.faults.error_rate = 0.5
    sim.faults.seed = 42
    first = await statuses()
    sim.faults.seed = 42
    assert await statuses() == first
    assert {200, 503} == set(first)


def test_faults_update_validates_all_or_nothing() -> None:
    faults = Faults()
    with pytest.raises(ValueError, match="error_rate"):
        faults.update({"latency": 1, "error_rate": 2})
    assert faults.latency == 0
    faults.update({"latency": 0.5, "outage": True})
    assert (faults.latency, faults.outage) == (0.5, True)


async def test_requests_are_recorded(nitro: httpx.AsyncClient, sim: Simulator) -> None:
    sim.reset_counts()
    await add(nitro, "server", {"name": "s", "ipaddress": "10.0.0.9"})
    await get(nitro, "server/s", attrs="name")
    await nitro.delete("/nitro/v1/config/server/s")
    got = [(r.method, r.resource, r.name, r.status) for r in sim.requests]
    assert got == [
        ("POST", "server", None, 201),
        ("GET", "server", "s", 200),
        ("DELETE", "server", "s", 200),
    ]
    assert sim.requests[1].query == {"attrs": "name"}


async def test_control_api(
    nitro: httpx.AsyncClient, anon: httpx.AsyncClient, sim: Simulator
) -> None:
    defaults = (await anon.get("/simulator/faults")).json()
    assert defaults == {
        "latency": 0.0,
        "error_rate": 0.0,
        "drop_rate": 0.0,
        "outage": False,
        "seed": None,
    }
    changed = await anon.put("/simulator/faults", json={"outage": True})
    assert changed.json()["outage"] is True
    assert sim.faults.outage is True
    with pytest.raises(httpx.TransportError):
        await get(nitro, "lbvserver")
    assert (await anon.get("/simulator/faults")).status_code == 200  # control is never faulted
    assert (await anon.put("/simulator/faults", json={"outage": "yes"})).status_code == 400
    await anon.put("/simulator/faults", json={"outage": False})

    await add(nitro, "server", {"name": "s", "ipaddress": "10.0.0.9"})
    objects = (await anon.get("/simulator/objects/server")).json()
    assert [s["name"] for s in objects["server"]] == ["s"]
    assert (await anon.get("/simulator/objects/nothing")).status_code == 404

    counts = (await anon.get("/simulator/requests")).json()
    assert counts["by_method"] == {"POST": 2, "GET": 1}  # login, add; the dropped GET
    assert counts["writes"] == 2
    await anon.delete("/simulator/requests")
    assert sim.requests == []

    assert (await anon.post("/simulator/expire-sessions")).json() == {"expired": 1}
    assert_error(await get(nitro, "lbvserver"), 401, 444)


async def test_reset_clears_configuration_but_keeps_builtins(
    nitro: httpx.AsyncClient, anon: httpx.AsyncClient, sim: Simulator
) -> None:
    await add(nitro, "server", {"name": "s", "ipaddress": "10.0.0.9"})
    assert (await anon.post("/simulator/reset")).status_code == 200
    assert sim.objects("server") == []
    assert any(m["monitorname"] == "tcp-default" for m in sim.objects("lbmonitor"))
    assert (await get(nitro, "server")).status_code == 200  # sessions survive a reset
