"""A real Prometheus (Debian's ``/usr/bin/prometheus``) on loopback for one test: its own
port and data directory, scraping and evaluating every second."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from lbctl.devenv.controlplane import free_port
from tests.monitoring.rules import tool
from tests.waiting import eventually


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


@dataclass
class RunningPrometheus:
    url: str
    session: aiohttp.ClientSession

    async def api(self, path: str) -> Any:
        """``data`` of a GET on ``/api/v1/<path>``."""
        async with self.session.get(f"{self.url}/api/v1/{path}") as response:
            assert response.status == 200, await response.text()
            body = await response.json()
        assert body["status"] == "success", body
        return body["data"]

    async def firing(self, alertname: str) -> list[dict[str, str]]:
        """The label sets of ``alertname``'s firing alerts."""
        alerts = (await self.api("alerts"))["alerts"]
        return [
            a["labels"]
            for a in alerts
            if a["labels"]["alertname"] == alertname and a["state"] == "firing"
        ]

    async def rule_health(self) -> dict[str, tuple[str, str]]:
        """Rule name → (health, last error) as the rule manager last evaluated it."""
        groups = (await self.api("rules"))["groups"]
        return {
            rule["name"]: (rule["health"], rule.get("lastError", ""))
            for group in groups
            for rule in group["rules"]
        }


def _launch(
    workdir: Path, target: str, groups: list[dict[str, Any]]
) -> tuple[subprocess.Popen[bytes], str]:
    """Write the configuration and the rules into ``workdir`` and start Prometheus; the
    process and its ``host:port``."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(workdir / "rules.yaml")],
        "scrape_configs": [{"job_name": "lbctl", "static_configs": [{"targets": [target]}]}],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    address = f"127.0.0.1:{free_port()}"
    with (workdir / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [
                tool("prometheus"),
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address={address}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return process, address


@contextlib.asynccontextmanager
async def prometheus(
    workdir: Path, target: str, groups: list[dict[str, Any]]
) -> AsyncIterator[RunningPrometheus]:
    """Prometheus scraping ``target`` (host:port) and evaluating ``groups`` every second,
    stopped when the block ends."""
    process, address = _launch(workdir, target, groups)
    url = f"http://{address}"
    try:
        async with aiohttp.ClientSession() as session:

            async def ready() -> bool:
                assert process.poll() is None, _tail(workdir / "prometheus.log")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{url}/-/ready") as response:
                        return response.status == 200
                return False

            await eventually(ready, within=30, what="Prometheus ready")
            yield RunningPrometheus(url, session)
    finally:
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 10)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)
