"""Login, the three ways to send a session, stateless auth, expiry and the session limit."""

from __future__ import annotations

import httpx

from lbctl.nitro.simulator import Simulator
from tests.simulator.conftest import LOGIN, FakeClock, assert_error, get


async def login(c: httpx.AsyncClient, **extra: object) -> httpx.Response:
    return await c.post("/nitro/v1/config/login", json={"login": {**LOGIN["login"], **extra}})


async def test_login_sets_cookie_and_returns_sessionid(anon: httpx.AsyncClient) -> None:
    response = await login(anon)
    assert response.status_code == 201
    token = response.json()["sessionid"]
    assert response.json()["errorcode"] == 0
    assert response.headers["set-cookie"] == f"NITRO_AUTH_TOKEN={token}; path=/nitro/v1"
    assert (await get(anon, "lbvserver")).status_code == 200


async def test_bad_password_is_354(anon: httpx.AsyncClient) -> None:
    response = await anon.post(
        "/nitro/v1/config/login", json={"login": {"username": "nsroot", "password": "no"}}
    )
    data = assert_error(response, 401, 354)
    assert data["message"] == "Invalid username or password"


async def test_no_session_is_1026(anon: httpx.AsyncClient) -> None:
    assert_error(await get(anon, "lbvserver"), 401, 1026)


async def test_session_accepted_in_all_three_forms(anon: httpx.AsyncClient, url: str) -> None:
    token = (await login(anon)).json()["sessionid"]
    anon.cookies.clear()
    forms = [
        {"Cookie": f"NITRO_AUTH_TOKEN={token}"},
        {"Cookie": f"sessionid={token}"},
        {"Set-Cookie": f"NITRO_AUTH_TOKEN={token}"},
    ]
    async with httpx.AsyncClient(base_url=url) as fresh:
        for headers in forms:
            response = await fresh.get("/nitro/v1/config/lbvserver", headers=headers)
            assert response.status_code == 200, headers


async def test_stateless_headers(anon: httpx.AsyncClient) -> None:
    ok = {"X-NITRO-USER": "nsroot", "X-NITRO-PASS": "nsroot"}
    assert (await anon.get("/nitro/v1/config/lbvserver", headers=ok)).status_code == 200
    bad = {"X-NITRO-USER": "nsroot", "X-NITRO-PASS": "wrong"}
    assert_error(await anon.get("/nitro/v1/config/lbvserver", headers=bad), 401, 354)


async def test_inactivity_expires_session_with_444(
    nitro: httpx.AsyncClient, clock: FakeClock
) -> None:
    clock.advance(1700)
    assert (await get(nitro, "lbvserver")).status_code == 200  # use keeps it alive
    clock.advance(1700)
    assert (await get(nitro, "lbvserver")).status_code == 200
    clock.advance(1801)
    data = assert_error(await get(nitro, "lbvserver"), 401, 444)
    assert "Please login again" in data["message"]


async def test_login_timeout_overrides_default(anon: httpx.AsyncClient, clock: FakeClock) -> None:
    await login(anon, timeout=60)
    clock.advance(61)
    assert_error(await get(anon, "lbvserver"), 401, 444)


async def test_expire_sessions_kills_every_session(
    nitro: httpx.AsyncClient, sim: Simulator
) -> None:
    assert sim.expire_sessions() == 1
    assert_error(await get(nitro, "lbvserver"), 401, 444)
    assert (await login(nitro)).status_code == 201
    assert (await get(nitro, "lbvserver")).status_code == 200


async def test_logout_ends_the_session(nitro: httpx.AsyncClient) -> None:
    response = await nitro.post("/nitro/v1/config/logout", json={"logout": {}})
    assert response.status_code == 200
    assert_error(await get(nitro, "lbvserver"), 401, 444)


async def test_twenty_sessions_at_most(anon: httpx.AsyncClient, clock: FakeClock) -> None:
    for _ in range(20):
        assert (await login(anon)).status_code == 201
    assert_error(await login(anon), 599, 445)
    clock.advance(1801)  # idle sessions expire and free their slots
    assert (await login(anon)).status_code == 201


async def test_login_timeout_as_string_and_invalid(
    anon: httpx.AsyncClient, clock: FakeClock
) -> None:
    assert_error(await login(anon, timeout="soon"), 599, 1097)
    assert (await login(anon, timeout="30")).status_code == 201
    clock.advance(31)
    assert_error(await get(anon, "lbvserver"), 401, 444)
