"""Drift maths: PSI and its bands, decision-rate and modality-mix changes, the alarm bars and their errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import REPO
from tripwire.common.config import ConfigError, from_dict, load_yaml
from tripwire.monitoring.drift import (MonitorBars, compare_windows, modality_mix, psi, psi_band, quantile_edges,
                            render_monitor_html)

N = 20_000


def beta(a: float, b: float, seed: int, n: int = N) -> np.ndarray:
    return np.random.default_rng(seed).beta(a, b, n)


def rows(actions: dict[str, int], mixes: dict[tuple[str, ...], int] | None = None, score: float = 0.1) -> list[dict]:
    """Hand-made rows: ``actions`` counts in order, modality mixes assigned in order (default all text)."""
    out = [{"id": f"r{i}", "scores": {"hate": score}, "action": action, "modalities": ["text"]}
           for i, action in enumerate(a for a, count in actions.items() for _ in range(count))]
    if mixes:
        names = [list(mix) for mix, count in mixes.items() for _ in range(count)]
        assert len(names) == len(out)
        for row, mix in zip(out, names):
            row["modalities"] = mix
    return out


def test_identical_distributions_are_stable():
    reference = beta(2, 5, seed=1)
    assert psi(reference, reference) == pytest.approx(0.0, abs=1e-12)
    same = psi(reference, beta(2, 5, seed=2))
    assert 0 <= same < 0.01 and psi_band(same) == "stable"


def test_a_clearly_shifted_distribution_is_major():
    value = psi(beta(2, 5, seed=1), beta(5, 2, seed=2))
    assert value > 0.25 and psi_band(value) == "major"


def test_a_moderate_shift_lands_in_the_middle_band():
    value = psi(beta(2, 5, seed=1), beta(2.7, 5, seed=2))
    assert 0.1 <= value < 0.25 and psi_band(value) == "moderate", value


def test_psi_matches_the_formula_on_hand_made_bins():
    # Four equal groups: the quartile edges fall between them, so each bin holds a quarter of the reference.
    reference = np.array([0.5, 1.5, 2.5, 3.5] * 25)
    edges = quantile_edges(reference, 4)
    assert len(edges) == 3 and 0.5 < edges[0] < 1.5 < edges[1] < 2.5 < edges[2] < 3.5
    current = np.array([0.5] * 50 + [1.5] * 50)  # half, half, nothing, nothing (empty bins get 1e-4)
    shares = np.array([0.5, 0.5, 1e-4, 1e-4])
    assert psi(reference, current, bins=4) == pytest.approx(float(np.sum((shares - 0.25) * np.log(shares / 0.25))))
    # Values beyond the reference's range land in the open-ended outer bins instead of being dropped.
    beyond = np.array([-5.0, 0.5, 10.0, 3.5] * 25)
    assert psi(reference, beyond, bins=4) == pytest.approx(psi(reference, np.array([0.5] * 50 + [3.5] * 50), bins=4))


def test_ties_in_the_reference_collapse_bins_and_stay_finite():
    reference = np.zeros(500)  # every quantile is 0: one edge, two bins
    assert len(quantile_edges(reference, 10)) == 1
    value = psi(reference, np.full(500, -1.0))
    assert np.isfinite(value) and value > 0.25


def test_psi_bands_at_their_edges():
    assert [psi_band(v) for v in (0.0, 0.0999, 0.1, 0.2499, 0.25, 3.0)] == \
        ["stable", "stable", "moderate", "moderate", "major", "major"]


def test_psi_rejects_empty_or_non_finite_scores():
    with pytest.raises(ValueError, match="reference_scores"):
        psi([], [0.1])
    with pytest.raises(ValueError, match="current_scores"):
        psi([0.1, 0.2], [float("nan")])
    with pytest.raises(ValueError, match="bins"):
        psi([0.1], [0.1], bins=1)


def test_decision_rates_and_their_changes():
    bars = MonitorBars(min_window_items=10)
    reference = rows({"allow": 80, "review": 10, "restrict": 5, "block": 5})
    current = rows({"allow": 60, "review": 20, "restrict": 5, "block": 15})
    report = compare_windows(reference, current, ["hate"], bars)
    shares = report["actions"]["shares"]
    assert list(shares) == ["allow", "review", "restrict", "block"]
    assert shares["allow"] == {"reference": 0.8, "current": 0.6, "change": -0.2, "change_pp": -20.0}
    assert shares["block"]["change"] == pytest.approx(0.10) and shares["restrict"]["change"] == 0.0
    assert report["actions"]["total_variation"] == pytest.approx(0.2)
    action_alarms = [(a["name"], a["value"]) for a in report["alarms"] if a["kind"] == "action_rate"]
    assert action_alarms == [("allow", -0.2), ("review", 0.1), ("block", 0.1)]
    assert not report["ok"]


def test_the_decision_may_be_nested_as_the_api_returns_it():
    bars = MonitorBars(min_window_items=10)
    flat = rows({"allow": 10, "block": 10})
    nested = [{**{k: v for k, v in r.items() if k != "action"}, "decision": {"action": r["action"]}} for r in flat]
    assert compare_windows(flat, nested, ["hate"], bars)["actions"] == compare_windows(flat, flat, ["hate"], bars)["actions"]
    with pytest.raises(ConfigError, match="current window: row 0 has no action"):
        compare_windows(flat, [{"scores": {"hate": 0.1}, "modalities": ["text"]}] * 10, ["hate"], bars)


def test_an_action_outside_the_four_is_listed_after_them():
    bars = MonitorBars(min_window_items=10)
    report = compare_windows(rows({"allow": 10}), rows({"allow": 9, "escalate": 1}), ["hate"], bars)
    assert list(report["actions"]["shares"]) == ["allow", "review", "restrict", "block", "escalate"]
    assert report["actions"]["shares"]["escalate"]["current"] == pytest.approx(0.1)


def test_modality_mix_shares_and_their_changes():
    assert modality_mix(["text", "image"]) == "image+text" == modality_mix(["image", "text", "image"])
    assert modality_mix([]) == "none"
    bars = MonitorBars(min_window_items=10)
    reference = rows({"allow": 100}, {("text",): 70, ("image", "text"): 30})
    current = rows({"allow": 100}, {("text",): 50, ("text", "image"): 30, ("audio",): 20})
    report = compare_windows(reference, current, ["hate"], bars)
    shares = report["modalities"]["shares"]
    assert list(shares) == ["audio", "image+text", "text"]
    assert shares["audio"] == {"reference": 0.0, "current": 0.2, "change": 0.2, "change_pp": 20.0}
    assert shares["image+text"]["change"] == 0.0 and shares["text"]["change"] == pytest.approx(-0.2)
    assert report["modalities"]["total_variation"] == pytest.approx(0.2)
    assert [(a["kind"], a["name"]) for a in report["alarms"]] == [("modality_share", "audio"),
                                                                 ("modality_share", "text")]


def test_a_change_exactly_at_its_bar_is_not_an_alarm():
    # 0.55 - 0.50 is 0.05000000000000004 in floating point; it must not trip a 0.05 bar.
    bars = MonitorBars(min_window_items=10)
    report = compare_windows(rows({"allow": 50, "review": 50}), rows({"allow": 45, "review": 55}), ["hate"], bars)
    assert report["ok"], report["alarms"]
    report = compare_windows(rows({"allow": 50, "review": 50}), rows({"allow": 44, "review": 56}), ["hate"], bars)
    assert {a["name"] for a in report["alarms"]} == {"allow", "review"}


def test_score_drift_alarms_name_the_category_and_the_report_is_json():
    rng = np.random.default_rng(3)
    n = 2000
    reference = [{"id": str(i), "scores": {"hate": a, "sexual": b}, "action": "allow", "modalities": ["text"]}
                 for i, (a, b) in enumerate(zip(rng.beta(2, 5, n), rng.beta(2, 5, n)))]
    current = [{"id": str(i), "scores": {"hate": a, "sexual": b}, "action": "allow", "modalities": ["text"]}
               for i, (a, b) in enumerate(zip(rng.beta(5, 2, n), rng.beta(2, 5, n)))]
    report = compare_windows(reference, current, ["hate", "sexual"], MonitorBars(),
                             reference_source="ref.jsonl", current_source="cur.jsonl")
    assert json.loads(json.dumps(report)) == report
    assert list(report) == ["reference", "current", "bars", "categories", "actions", "modalities", "alarms", "ok"]
    assert report["reference"] == {"items": n, "source": "ref.jsonl"}
    hate, sexual = report["categories"]["hate"], report["categories"]["sexual"]
    assert hate["band"] == "major" and sexual["band"] == "stable"
    assert hate["reference_mean"] == pytest.approx(2 / 7, abs=0.02) and hate["current_mean"] == pytest.approx(5 / 7, abs=0.02)
    assert sum(hate["histogram"]["current"]) == pytest.approx(1.0) and len(hate["histogram"]["edges"]) == 21
    assert report["alarms"] == [{"kind": "psi", "name": "hate", "value": hate["psi"], "bar": 0.25}]
    assert report["ok"] is False


def test_the_html_page_is_self_contained_and_escaped():
    bars = MonitorBars(min_window_items=10)
    reference = rows({"allow": 20}, score=0.1)
    current = [{**r, "scores": {"<b>x</b>": 0.9, "hate": 0.9}} for r in rows({"block": 20})]
    reference = [{**r, "scores": {"<b>x</b>": 0.1, "hate": 0.1}} for r in reference]
    report = compare_windows(reference, current, ["<b>x</b>", "hate"], bars, current_source="<script>")
    page = render_monitor_html(report)
    assert page.startswith("<!DOCTYPE html>") and "ALARM" in page
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page and "<script>" not in page
    assert page.count('src="data:image/png;base64,') == 2
    assert "http://" not in page and "https://" not in page and "<link" not in page
    calm = render_monitor_html(compare_windows(reference, reference, ["hate"], bars))
    assert ">OK: 0 alarm(s)<" in calm


def test_a_window_under_the_minimum_is_an_error_naming_its_size():
    enough, few = rows({"allow": 100}), rows({"allow": 99})
    with pytest.raises(ConfigError, match=r"current window: 99 items.*min_window_items \(100\)"):
        compare_windows(enough, few, ["hate"], MonitorBars())
    with pytest.raises(ConfigError, match=r"reference window: 0 items"):
        compare_windows([], enough, ["hate"], MonitorBars())


def test_a_category_missing_from_a_window_is_an_error():
    bars = MonitorBars(min_window_items=10)
    with pytest.raises(ConfigError, match="current window: no scores for category 'sexual'"):
        compare_windows([{**r, "scores": {"hate": 0.1, "sexual": 0.2}} for r in rows({"allow": 10})],
                        rows({"allow": 10}), ["hate", "sexual"], bars)


@pytest.mark.parametrize("data, field", [
    ({"max_psi": 0}, "max_psi"),
    ({"max_psi": "high"}, "max_psi"),
    ({"max_action_rate_change": 5}, "max_action_rate_change"),
    ({"max_modality_share_change": -0.1}, "max_modality_share_change"),
    ({"min_window_items": 0}, "min_window_items"),
    ({"min_window_items": 1.5}, "min_window_items"),
    ({"max_psy": 0.2}, "max_psy"),
])
def test_bad_bars_name_the_field(data, field):
    with pytest.raises(ConfigError, match=field):
        from_dict(MonitorBars, data)


def test_the_default_bars_file_spells_out_the_defaults(tmp_path):
    assert load_yaml(MonitorBars, REPO / "pipelines" / "configs" / "monitor.yaml") == MonitorBars()
    bad = tmp_path / "bars.yaml"
    bad.write_text("max_action_rate_change: 0\n")
    with pytest.raises(ConfigError, match=f"{bad}: MonitorBars.max_action_rate_change"):
        load_yaml(MonitorBars, bad)
