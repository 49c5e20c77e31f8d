"""lbctl's alerts in a real Prometheus scraping a running lbctl (with the NITRO simulator):
a full pool and a pending Service fire their alerts, a stopped NetScaler fires its own, and
every expression of the rules and the dashboard names only metrics lbctl exports."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import quote

from prometheus_client.parser import text_string_to_metric_families

from lbctl import app
from lbctl.config import Settings
from lbctl.devenv.controlplane import LocalControlPlane, free_port
from lbctl.ipam.ranges import parse_vip_range
from lbctl.kube.client import SERVICES, KubeClient, api_client_from
from lbctl.nitro.simulator import Simulator
from tests.integration.conftest import SIM_PASSWORD, RunningSimulator, load_balancer, wait_for_ip
from tests.integration.prometheus_server import RunningPrometheus, prometheus
from tests.monitoring.promql import expressions, metric_names
from tests.monitoring.rules import rule_groups, shortened
from tests.waiting import cancel_and_wait, eventually

ALERT_WITHIN = 30.0
"""Seconds for an alert to fire: scrape (1 s) + evaluation (1 s) + ``for`` (1 s), with room
for a loaded machine."""


async def exported_names(prom: RunningPrometheus, target: str) -> set[str]:
    """The sample names lbctl's /metrics serves now (histograms as ``_bucket``, ``_sum`` and
    ``_count``)."""
    async with prom.session.get(f"http://{target}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    assert "_created" not in text
    return {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }


async def prom_value(prom: RunningPrometheus, query: str, wanted: float) -> bool:
    """Whether the instant ``query`` has one sample, equal to ``wanted``."""
    result = (await prom.api(f"query?query={quote(query)}"))["result"]
    return len(result) == 1 and float(result[0]["value"][1]) == wanted


async def test_alerts_fire_in_prometheus_and_every_expression_names_exported_metrics(
    kube: KubeClient,
    namespace: str,
    control_plane: LocalControlPlane,
    nodes: Callable[..., Awaitable[None]],
    tmp_path: Path,
) -> None:
    await nodes(f"{namespace}-node", "10.10.0.11")
    target = f"127.0.0.1:{free_port()}"
    async with contextlib.AsyncExitStack() as stack:
        sim = Simulator(username="nsroot", password=SIM_PASSWORD)
        netscaler = contextlib.AsyncExitStack()  # closed early: the NetScaler goes away
        stack.push_async_callback(netscaler.aclose)
        sim_url = await netscaler.enter_async_context(sim.serve())
        adc = RunningSimulator(sim, sim_url).settings(health_period=0.5)
        settings = Settings(
            pools=parse_vip_range('["10.93.0.0/30"]'),
            namespace=namespace,
            metrics_bind_address=target,
            adc=adc,
        )
        client = KubeClient(await api_client_from(str(control_plane.kubeconfig)))
        stack.push_async_callback(client.close)
        runtime = app.build(settings, client)
        task = asyncio.create_task(app.run_with(settings, client, runtime))
        stack.push_async_callback(cancel_and_wait, task)
        await eventually(runtime.leading.is_set, what="lbctl leads")
        groups = shortened(rule_groups(), to="1s")
        prom = await stack.enter_async_context(prometheus(tmp_path / "prom", target, groups))

        for name in ("one", "two", "three"):  # the /30 holds two addresses
            await kube.create(SERVICES, namespace, load_balancer(name))
        await wait_for_ip(kube, namespace, "one")
        await wait_for_ip(kube, namespace, "two")
        full = await eventually(
            lambda: prom.firing("LbctlPoolAlmostFull"), within=ALERT_WITHIN, what="pool alert"
        )
        assert [(a["pool"], a["family"], a["severity"]) for a in full] == [
            ("default", "ipv4", "warning")
        ]
        pending = await eventually(
            lambda: prom.firing("LbctlServicesPendingAddress"),
            within=ALERT_WITHIN,
            what="pending alert",
        )
        assert [a["reason"] for a in pending] == ["PoolExhausted"]
        assert await prom.firing("LbctlNoLeader") == []
        assert await prom.firing("LbctlNetScalerUnreachable") == []

        await eventually(
            lambda: prom_value(prom, "sum(lbctl_netscaler_vservers)", 2.0),
            within=ALERT_WITHIN,
            what="both addressed Services' vservers counted",
        )
        exported = await exported_names(prom, target)
        for expr in expressions():
            assert metric_names(expr) <= exported, (expr, metric_names(expr) - exported)
        health = await prom.rule_health()
        assert all(h == ("ok", "") for h in health.values()), health

        await netscaler.aclose()
        unreachable = await eventually(
            lambda: prom.firing("LbctlNetScalerUnreachable"),
            within=ALERT_WITHIN,
            what="NetScaler alert",
        )
        assert [(a["instance"], a["severity"]) for a in unreachable] == [(target, "critical")]
