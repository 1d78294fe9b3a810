"""The promotion gate: bars a candidate must clear against the baseline, read from YAML.

    bars:
      - name: recall at P90 holds per category
        metric: recall_at_precision
        scope: category          # category | macro | slice (every measured slice, per category)
        max_drop: 0.01           # candidate - baseline >= -0.01
      - name: macro PR-AUC does not drop
        metric: pr_auc
        scope: macro
        max_drop: 0.0
      - name: no slice's false-positive rate rises by more than 2 points
        metric: fpr
        scope: slice
        max_rise: 0.02

A bar is judged on the point estimate of each delta (the report shows its paired interval beside it).
A bar passes only on evidence: a delta that is undefined (the metric is undefined for the baseline or the
candidate: no positives, no predicted positives) fails it, with a ``reason`` naming the side, and so does
a bar with nothing in its scope (no set, category or measured slice). Slices, and categories within a
slice, too small to measure (``min_slice_items``, ``min_slice_positives``, ``min_slice_negatives``) are
out of scope, not failures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

from tripwire.common.config import ConfigError
from tripwire.evaluation.metrics import CATEGORY_METRICS

SCOPES = ("category", "macro", "slice")


@dataclass(frozen=True)
class Bar:
    """One promotion bar (give ``max_drop``, ``max_rise`` or both)."""

    name: str
    metric: str
    scope: str = "category"
    max_drop: float | None = None
    max_rise: float | None = None
    categories: list[str] | None = None  # None: every category the set labels
    golden: list[str] | None = None  # None: every golden set compared

    def __post_init__(self):
        if self.metric not in CATEGORY_METRICS:
            raise ConfigError(f"bars.{self.name}.metric: {self.metric!r} is not one of {list(CATEGORY_METRICS)}")
        if self.scope not in SCOPES:
            raise ConfigError(f"bars.{self.name}.scope: {self.scope!r} is not one of {list(SCOPES)}")
        if self.max_drop is None and self.max_rise is None:
            raise ConfigError(f"bars.{self.name}: give max_drop or max_rise")
        if any(v is not None and v < 0 for v in (self.max_drop, self.max_rise)):
            raise ConfigError(f"bars.{self.name}: max_drop and max_rise are non-negative amounts")


@dataclass(frozen=True)
class GateConfig:
    bars: list[Bar] = field(default_factory=list)

    def __post_init__(self):
        if not self.bars:
            raise ConfigError("bars: a gate needs at least one bar")
        names = [b.name for b in self.bars]
        if len(set(names)) != len(names):
            raise ConfigError("bars: names must be unique")


def _deltas(bar: Bar, comparison: dict[str, Any]) -> Iterator[tuple[str, dict]]:
    for set_name, result in comparison["sets"].items():
        if bar.golden is not None and set_name not in bar.golden:
            continue
        if bar.scope == "macro":
            yield f"{set_name}/macro", result["macro"][bar.metric]
            continue
        groups = [("", result)] if bar.scope == "category" else [
            (f"{name}/", s) for name, s in result["slices"].items() if not s["too_small"]]
        for prefix, group in groups:
            for category, metrics in group["categories"].items():
                if bar.categories is None or category in bar.categories:
                    yield f"{set_name}/{prefix}{category}", metrics[bar.metric]


def _undefined(metric: str, entry: dict) -> str:
    sides = [side for side in ("baseline", "candidate") if entry.get(side) is None]
    if not sides:  # both defined but the delta is not (a NaN difference): say so plainly
        return f"undefined: the {metric} delta is undefined"
    text = f"undefined: {metric} is undefined for the {' and the '.join(sides)}"
    other = next((side for side in ("baseline", "candidate") if side not in sides), None)
    return f"{text} ({other} {entry[other]:g})" if other else text


def apply_gate(gate: GateConfig, comparison: dict[str, Any]) -> dict[str, Any]:
    """``{"passed", "bars": [{"name", "passed", "failures": [{"where", "value", "limit"[, "reason"]}]}]}``."""
    bars = []
    for bar in gate.bars:
        failures, measured = [], 0
        limit = -bar.max_drop if bar.max_drop is not None else bar.max_rise
        for where, entry in _deltas(bar, comparison):
            measured += 1
            delta = entry["delta"]
            if delta is None:
                failures.append({"where": where, "value": None, "limit": limit,
                                 "reason": _undefined(bar.metric, entry)})
                continue
            if bar.max_drop is not None and delta < -bar.max_drop - 1e-12:
                failures.append({"where": where, "value": delta, "limit": -bar.max_drop})
            if bar.max_rise is not None and delta > bar.max_rise + 1e-12:
                failures.append({"where": where, "value": delta, "limit": bar.max_rise})
        if not measured:
            failures.append({"where": "(anywhere)", "value": None, "limit": limit,
                             "reason": "nothing measured: no set, category or slice in scope"})
        bars.append({"name": bar.name, "metric": bar.metric, "scope": bar.scope, "passed": not failures,
                     "failures": failures})
    return {"passed": all(b["passed"] for b in bars), "bars": bars}
