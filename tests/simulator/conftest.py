"""Fixtures: a simulator on an injected clock, served on a free port, and httpx clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from lbctl.nitro.simulator import Simulator

LOGIN = {"login": {"username": "nsroot", "password": "nsroot"}}


class FakeClock:
    """Time that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> Simulator:
    return Simulator(username="nsroot", password="nsroot", session_timeout=1800.0, clock=clock)


@pytest.fixture
async def url(sim: Simulator) -> AsyncIterator[str]:
    async with sim.serve() as base:
        yield base


@pytest.fixture
async def anon(url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client that has not logged in."""
    async with httpx.AsyncClient(base_url=url) as c:
        yield c


@pytest.fixture
async def nitro(url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A logged-in client: httpx keeps the NITRO_AUTH_TOKEN cookie from the login."""
    async with httpx.AsyncClient(base_url=url) as c:
        response = await c.post("/nitro/v1/config/login", json=LOGIN)
        assert response.status_code == 201
        yield c


def body(response: httpx.Response) -> Any:
    return response.json()


async def add(c: httpx.AsyncClient, resource: str, obj: Any) -> httpx.Response:
    return await c.post(f"/nitro/v1/config/{resource}", json={resource: obj})


async def get(c: httpx.AsyncClient, path: str, **params: str) -> httpx.Response:
    return await c.get(f"/nitro/v1/config/{path}", params=params)


def assert_error(response: httpx.Response, status: int, code: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    data: dict[str, Any] = response.json()
    assert data["errorcode"] == code, data
    assert data["severity"] == "ERROR"
    return data
