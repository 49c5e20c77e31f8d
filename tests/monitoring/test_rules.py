"""The alert rules: valid for promtool, each alert unit-tested with its real ``for:``, carried
unchanged into the PrometheusRule, and documented by a README runbook."""

from __future__ import annotations

import subprocess

import yaml

from lbctl.devenv.cluster import kustomization_documents
from tests.monitoring.rules import (
    MONITORING,
    README,
    RULES,
    RULES_TEST,
    alerts,
    github_anchors,
    rule_groups,
    tool,
)

ALERTS = {
    "LbctlPoolAlmostFull", "LbctlServicesPendingAddress", "LbctlNetScalerUnreachable",
    "LbctlReconcileErrors", "LbctlNoLeader",
}  # fmt: skip


def promtool(*args: str) -> str:
    result = subprocess.run(
        [tool("promtool"), *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_promtool_accepts_the_rule_file() -> None:
    assert f"SUCCESS: {len(ALERTS)} rules found" in promtool("check", "rules", str(RULES))


def test_promtool_unit_tests_pass_for_every_alert() -> None:
    """Each alert is silent just before its ``for:`` and fires just after, with its labels
    and annotations (tests/monitoring/prometheus-rules-test.yaml)."""
    tested = {
        case["alertname"]
        for test in yaml.safe_load(RULES_TEST.read_text())["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert tested == {rule["alert"] for rule in alerts()} == ALERTS
    assert "SUCCESS" in promtool("test", "rules", str(RULES_TEST))


def test_every_alert_has_severity_annotations_and_a_runbook_in_the_readme() -> None:
    anchors = github_anchors(README.read_text())
    base = "https://github.com/lbctl/lbctl/blob/main/README.md#"
    for rule in alerts():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["for"], rule["alert"]
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook_url"} <= annotations.keys(), rule["alert"]
        assert annotations["runbook_url"].startswith(base), rule["alert"]
        anchor = annotations["runbook_url"].removeprefix(base)
        assert anchor == rule["alert"].lower()
        assert anchor in anchors, f"README has no heading for #{anchor}"


def test_monitoring_manifests_scrape_lbctl_metrics_and_carry_the_rule_file() -> None:
    documents = {doc["kind"]: doc for doc in kustomization_documents(MONITORING)}
    assert set(documents) == {"ServiceMonitor", "PrometheusRule"}
    assert documents["PrometheusRule"]["spec"]["groups"] == rule_groups()
    monitor = documents["ServiceMonitor"]
    assert monitor["metadata"]["namespace"] == "lbctl-system"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["lbctl-system"]}
    assert monitor["spec"]["selector"] == {
        "matchLabels": {"app.kubernetes.io/name": "lbctl", "app.kubernetes.io/component": "metrics"}
    }
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["http-metrics"]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
