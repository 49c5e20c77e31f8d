"""Fixtures shared by the unit tests: a respx-mocked NetScaler and a client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import respx

from lbctl.nitro.client import Credentials, NitroClient
from tests.unit.nitro_wire import BASE, SECRET, URL, login_ok, no_sleep


@pytest.fixture
async def mock() -> AsyncIterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        router.post("/login", name="login").mock(return_value=login_ok())
        router.post("/logout", name="logout").mock(return_value=httpx.Response(200))
        yield router


@pytest.fixture
async def client(mock: respx.MockRouter) -> AsyncIterator[NitroClient]:
    nitro = NitroClient(URL, Credentials("nsroot", SECRET), sleep=no_sleep, retries=2)
    yield nitro
    await nitro.aclose()
