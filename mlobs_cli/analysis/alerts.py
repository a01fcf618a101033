"""`mlobs tail --alert "p99 > 250ms"`: check-syntax conditions watched on each window snapshot.

An alert rule is written exactly like a `mlobs check` rule (parsed by `rules.parse_assert`), but it
states the condition that raises the alert rather than the one that must hold. `AlertTracker`
keeps, per rule and model version, whether the alert is firing, and reports each crossing and
each recovery once.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlobs_cli.analysis.rules import POOLED_SCOPE, Rule, parse_assert
from mlobs_cli.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_COLUMNS = {
    "mean": "mean_ms",
    "max": "max_ms",
    "error_rate": "error_rate",
    "requests": "requests",
    "rate": "rate_per_s",
}


def parse_alert(text: str) -> Rule:
    """A rule of the check syntax that `tail` can watch on its window (per version or one version)."""
    rule = parse_assert(text, origin="--alert")
    if rule.kind not in ("stat", "stream"):
        raise UsageError(
            f"--alert {text!r}: {rule.metric} cannot be watched live",
            "use pNN, mean, max, error_rate, requests or rate, e.g. --alert 'p99 > 250ms'",
        )
    if rule.field not in (None, "latency_ms"):
        raise UsageError(f"--alert {text!r}: tail watches latency_ms only", "e.g. p99 > 250ms")
    if rule.scope == POOLED_SCOPE:
        raise UsageError(f"--alert {text!r}: tail watches each model version", "drop the '*:' scope")
    return rule


def column_of(rule: Rule) -> str:
    """The window table column a rule reads."""
    from mlobs_cli.analysis.latency import percentile_key

    if rule.percentile is not None:
        return percentile_key(rule.percentile)
    return _COLUMNS[rule.metric]


@dataclass(frozen=True)
class Crossing:
    """An alert that started (`firing`) or recovered, with the value that decided it."""

    rule: Rule
    model_version: str
    value: float
    firing: bool


class AlertTracker:
    """Which (rule, version) alerts are firing; `update` returns the changes since the last call."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules
        self._firing: dict[tuple[str, str], float] = {}

    def update(self, table: pd.DataFrame) -> list[Crossing]:
        changes: list[Crossing] = []
        for rule in self.rules:
            col = column_of(rule)
            if col not in table.columns or rule.threshold is None:
                continue
            for version, value, n in zip(
                table["model_version"].astype(str), table[col], table["requests"], strict=True
            ):
                if rule.scope is not None and version != rule.scope:
                    continue
                value = float(value) if value is not None else math.nan
                if math.isnan(value) and rule.kind == "stream" and n == 0:
                    value = 0.0  # no traffic: rate and requests are zero, not unknown
                if math.isnan(value):
                    continue  # no requests in the window: keep the state until there is data
                key = (rule.text, version)
                now = _OPS[rule.op](value, rule.threshold.value)
                if now and key not in self._firing:
                    self._firing[key] = value
                    changes.append(Crossing(rule, version, value, True))
                elif not now and key in self._firing:
                    del self._firing[key]
                    changes.append(Crossing(rule, version, value, False))
                elif now:
                    self._firing[key] = value
        return changes

    def firing(self) -> dict[str, list[str]]:
        """Version -> the rule texts firing for it."""
        out: dict[str, list[str]] = {}
        for rule_text, version in self._firing:
            out.setdefault(version, []).append(rule_text)
        return out

    def firing_list(self) -> list[dict[str, object]]:
        """Firing alerts as plain rows, for machine output."""
        return [
            {"rule": rule_text, "model_version": version, "value": value}
            for (rule_text, version), value in sorted(self._firing.items())
        ]
