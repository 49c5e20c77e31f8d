"""The Grafana dashboard: its data source is a variable, and it shows what an operator of
lbctl needs (pools, queues, reconciles, the NetScaler, the replicas)."""

from __future__ import annotations

import pytest

from tests.monitoring.promql import dashboard, dashboard_expressions, expressions, metric_names

SHOWN = {
    "lbctl_ipam_addresses_in_use_total", "lbctl_ipam_addresses_total",
    "lbctl_ipam_allocation_failures_total", "lbctl_services_pending",
    "workqueue_depth", "workqueue_adds_total", "workqueue_retries_total",
    "workqueue_queue_duration_seconds_bucket", "workqueue_work_duration_seconds_bucket",
    "workqueue_unfinished_work_seconds", "workqueue_longest_running_processor_seconds",
    "lbctl_reconciles_total", "lbctl_reconcile_duration_seconds_bucket",
    "lbctl_nitro_request_duration_seconds_count", "lbctl_nitro_request_duration_seconds_bucket",
    "lbctl_netscaler_up", "lbctl_netscaler_vservers", "lbctl_netscaler_vserver_members",
    "lbctl_leader", "process_resident_memory_bytes",
    "process_cpu_seconds_total",
}  # fmt: skip


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (pool) (rate(a_total{x="y", z=~"w|v"}[5m] offset 1h)) / b', {"a_total", "b"}),
        ("histogram_quantile(0.99, sum by (le) (rate(c_bucket[$__rate_interval])))", {"c_bucket"}),
        ('absent(d == 1) or e{f!=""} > 1e3 unless on (g) h', {"d", "e", "h"}),
        ("max without (instance) (i) * on (j) group_left (k) l", {"i", "l"}),
    ],
)
def test_metric_names_finds_the_selected_metrics_only(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_the_data_source_is_a_template_variable_used_by_every_panel() -> None:
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]


def test_the_dashboard_shows_pools_queues_reconciles_netscaler_and_replicas() -> None:
    shown = set().union(*(metric_names(expr) for expr in dashboard_expressions()))
    assert shown >= SHOWN, SHOWN - shown
    ids = [panel["id"] for panel in dashboard()["panels"]]
    assert len(ids) == len(set(ids))


def test_every_expression_names_at_least_one_metric() -> None:
    for expr in expressions():
        assert metric_names(expr), expr
