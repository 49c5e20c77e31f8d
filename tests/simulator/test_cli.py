"""``python -m lbctl.nitro.simulator`` starts, announces its URL, answers NITRO and stops cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx
import pytest

DEADLINE = 30.0


async def run_simulator(*args: str, env: dict[str, str]) -> tuple[str, asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lbctl.nitro.simulator", "--port", "0", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), DEADLINE)
    prefix = "listening on "
    text = line.decode().strip()
    assert text.startswith(prefix), text
    return text[len(prefix) :], proc


async def stop(proc: asyncio.subprocess.Process, sig: signal.Signals) -> tuple[int, str]:
    proc.send_signal(sig)
    out, _ = await asyncio.wait_for(proc.communicate(), DEADLINE)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def login(url: str, password: str) -> int:
    async with httpx.AsyncClient(base_url=url) as c:
        body = {"login": {"username": "admin", "password": password}}
        return (await c.post("/nitro/v1/config/login", json=body)).status_code


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_password_from_env(sig: signal.Signals) -> None:
    env = {**os.environ, "NITRO_SIM_PASSWORD": "s3cret"}
    url, proc = await run_simulator("--username", "admin", env=env)
    try:
        assert await login(url, "s3cret") == 201
        assert await login(url, "nsroot") == 401
    finally:
        code, out = await stop(proc, sig)
    assert code == 0
    assert "stopped" in out


async def test_password_from_file(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-file\n")
    env = {k: v for k, v in os.environ.items() if k != "NITRO_SIM_PASSWORD"}
    url, proc = await run_simulator("--username", "admin", "--password-file", str(secret), env=env)
    try:
        assert await login(url, "from-file") == 201
    finally:
        code, _ = await stop(proc, signal.SIGTERM)
    assert code == 0
