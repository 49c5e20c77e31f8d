"""The metric names a PromQL expression reads: enough of PromQL's syntax to find them in
lbctl's rules and dashboard (strings, label matchers, ranges, grouping lists and Grafana
variables are dropped; a name followed by ``(`` is a function or an aggregation)."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.monitoring.rules import DASHBOARD, alerts

KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
     "unless", "offset", "inf", "nan"}
)  # fmt: skip
_DROPPED = (
    re.compile(r'"(?:[^"\\]|\\.)*"'),  # strings
    re.compile(r"\{[^}]*\}"),  # label matchers
    re.compile(r"\[[^\]]*\]"),  # ranges and subqueries
    re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"),
    re.compile(r"\$\{?\w+\}?"),  # Grafana variables
)
_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects, e.g. ``{"a_total", "b"}`` for
    ``sum by (x) (rate(a_total{y="z"}[5m])) / b``."""
    text = expr
    for pattern in _DROPPED:
        text = pattern.sub(" ", text)
    names = set()
    for match in _NAME.finditer(text):
        before = text[match.start() - 1] if match.start() else " "
        if before.isdigit() or before == ".":  # 1e3, 5m
            continue
        if text[match.end() :].lstrip().startswith("(") or match.group() in KEYWORDS:
            continue
        names.add(match.group())
    return names


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_expressions() -> list[str]:
    return [
        str(target["expr"])
        for panel in dashboard()["panels"]
        for target in panel.get("targets", [])
    ]


def expressions() -> list[str]:
    """Every PromQL expression of the alert rules and the dashboard."""
    return [str(rule["expr"]) for rule in alerts()] + dashboard_expressions()
