"""The PromQL of docker/: every expression of the Grafana dashboard and of the alert rules.

Shared by the unit tests (every metric they name exists) and the Prometheus integration
test (every expression returns data from a real scrape of a worker).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
DASHBOARD = DOCKER / "grafana" / "dashboards" / "seatflow.json"
PROMETHEUS_CONFIG = DOCKER / "prometheus" / "prometheus.yml"
ALERTS = DOCKER / "prometheus" / "alerts.yml"
ALERTS_TEST = DOCKER / "prometheus" / "alerts.test.yml"

GRAFANA_VARIABLES = {"$__rate_interval": "30s", "$group": ".*"}
"""What Grafana would put in place of the dashboard's variables (all groups)."""


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for panel in panels:
        out.append(panel)
        out += _panels(panel.get("panels", []))
    return out


def dashboard_exprs() -> list[tuple[str, str]]:
    """(panel title, PromQL with Grafana's variables substituted), in dashboard order."""
    dashboard = json.loads(DASHBOARD.read_text())
    out = []
    for panel in _panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            out.append((panel["title"], expr))
    return out


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


_COMPARISON = re.compile(r"(==|!=|>=|<=|>|<)\s*(?=-?[0-9.])")


def with_bool(expr: str) -> str:
    """An alert's expression with `bool` on every comparison with a number.

    `x > 60` returns nothing while the alert does not fire; `x > bool 60` returns 0 or 1
    for every series of `x`: data exactly when the metric names and labels the rule relies
    on (and the label matching of its `and on (...)`) fit what the worker exports.
    """
    return _COMPARISON.sub(r"\1 bool ", expr)


def alert_exprs() -> list[tuple[str, str]]:
    """(alert name, its expression made to return data: see `with_bool`)."""
    return [(rule["alert"], with_bool(" ".join(rule["expr"].split()))) for rule in alert_rules()]


def metric_names(expr: str) -> set[str]:
    """The seatflow metric names an expression selects (and `up`)."""
    names = set(re.findall(r"\b(seatflow_[a-z0-9_]+)", expr))
    if re.search(r"\bup\{", expr):
        names.add("up")
    return names
