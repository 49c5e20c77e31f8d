"""Shared pieces of the NITRO client's respx tests: the ADC address, canned replies."""

from __future__ import annotations

import httpx

URL = "https://adc.example"
BASE = f"{URL}/nitro/v1/config"
SECRET = "s3cr3t-pa55"


async def no_sleep(_: float) -> None:
    return None


def login_ok(token: str = "tok1") -> httpx.Response:
    return httpx.Response(
        201,
        json={"errorcode": 0, "message": "Done", "severity": "NONE", "sessionid": token},
        headers={"Set-Cookie": f"NITRO_AUTH_TOKEN={token}; path=/nitro/v1"},
    )


def nitro_error(status: int, code: int, message: str) -> httpx.Response:
    return httpx.Response(status, json={"errorcode": code, "message": message, "severity": "ERROR"})
