"""Where the monitoring files live, and reading them (shared by the monitoring tests)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "charts" / "lbctl" / "files" / "prometheus-rules.yaml"
DASHBOARD = ROOT / "charts" / "lbctl" / "files" / "grafana-dashboard.json"
RULES_TEST = Path(__file__).resolve().parent / "prometheus-rules-test.yaml"
MONITORING = ROOT / "monitoring"
README = ROOT / "README.md"


def tool(name: str) -> str:
    """The path of ``promtool`` or ``prometheus`` (Debian's ``prometheus`` package, listed in
    hack/debian-packages.txt); AssertionError when it is not installed."""
    found = shutil.which(name)
    assert found, f"{name} not found: run ./hack/install-debian-packages (Debian 'prometheus')"
    return found


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(RULES.read_text())["groups"]
    return groups


def alerts() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]


def shortened(groups: list[dict[str, Any]], to: str) -> list[dict[str, Any]]:
    """The groups with every ``for:`` set to ``to`` (nothing else changed)."""
    return [
        {
            **group,
            "rules": [{**rule, "for": to} if "for" in rule else rule for rule in group["rules"]],
        }
        for group in groups
    ]


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of ``markdown`` (lowercased, punctuation but
    hyphens dropped, spaces as hyphens)."""
    anchors = set()
    for line in markdown.splitlines():
        heading = re.match(r"#+ +(.*)", line)
        if heading:
            text = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors
