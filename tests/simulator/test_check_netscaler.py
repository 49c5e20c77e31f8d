"""check_netscaler, a NITRO client from PyPI, judges the simulator's objects as it would an ADC's."""

from __future__ import annotations

import httpx
import pytest

from tests.peer_check_netscaler import CRITICAL, OK, WARNING, check_netscaler
from tests.simulator.conftest import add

MEMBER = "servicegroup_servicegroupmember_binding"


@pytest.fixture
async def pool(nitro: httpx.AsyncClient) -> None:
    await add(
        nitro, "lbvserver", {"name": "vs", "servicetype": "HTTP", "ipv46": "10.0.0.1", "port": 80}
    )
    await add(nitro, "servicegroup", {"servicegroupname": "sg", "servicetype": "HTTP"})
    await add(nitro, "lbvserver_servicegroup_binding", {"name": "vs", "servicegroupname": "sg"})
    for ip in ("10.1.0.1", "10.1.0.2"):
        await add(nitro, MEMBER, {"servicegroupname": "sg", "ip": ip, "port": 8080})


@pytest.mark.usefixtures("pool")
async def test_servicegroup_check_follows_member_health(nitro: httpx.AsyncClient, url: str) -> None:
    code, out = await check_netscaler(url, "nsroot", "-C", "servicegroup", "-n", "sg")
    assert code == OK, out
    assert "member quorum: 100.00%" in out
    await nitro.put("/simulator/members", json={"servicegroupname": "sg", "svrstate": "DOWN"})
    code, out = await check_netscaler(url, "nsroot", "-C", "servicegroup", "-n", "sg")
    assert code == CRITICAL, out
    assert "effective state is DOWN" in out


@pytest.mark.usefixtures("pool")
async def test_lbvserver_state_check_follows_member_health(
    nitro: httpx.AsyncClient, url: str
) -> None:
    args = ("-C", "state", "-o", "lbvserver", "-n", "vs")
    health = (*args, "-w", "90", "-c", "40")  # thresholds switch on its vslbhealth reading
    code, out = await check_netscaler(url, "nsroot", *args)
    assert code == OK, out
    await nitro.put(
        "/simulator/members", json={"servicegroupname": "sg", "ip": "10.1.0.1", "svrstate": "DOWN"}
    )
    code, out = await check_netscaler(url, "nsroot", *health)
    assert code == WARNING, out
    assert "50%" in out
    await nitro.put("/simulator/members", json={"servicegroupname": "sg", "svrstate": "DOWN"})
    code, out = await check_netscaler(url, "nsroot", *args)
    assert code == CRITICAL, out
    code, out = await check_netscaler(url, "nsroot", *health)
    assert code == CRITICAL, out
    assert "0%" in out


async def test_nsconfig_check_sees_unsaved_changes(nitro: httpx.AsyncClient, url: str) -> None:
    assert (await check_netscaler(url, "nsroot", "-C", "nsconfig"))[0] == OK
    await add(nitro, "server", {"name": "s1", "ipaddress": "10.9.0.1"})
    assert (await check_netscaler(url, "nsroot", "-C", "nsconfig"))[0] == WARNING
