"""``tripwire monitor`` end to end on real windows: scan output folders written by the scan's own writer, and
a JSONL file of results as the HTTP API serves them. No Ray."""

from __future__ import annotations

import datetime
import json

import numpy as np
import pytest

from entrypoints.cli import FAILED_EXIT, USAGE_EXIT, main
from tripwire.monitoring.windows import read_window
from tripwire.policy import Policy, Taxonomy
from tripwire.scan.output import ScanWriter, result_rows
from tripwire.moderation.result import ModerationResult

CATEGORIES = Taxonomy.load().names
SHIFTED = ("hate", "illicit")
MIXES = (["text"], ["image", "text"], ["image"], ["audio", "video"])
ITEMS = 2000  # big enough that two draws of one distribution stay well inside every bar
NOW = datetime.datetime(2026, 12, 1, 9, 0, tzinfo=datetime.timezone.utc)


def results(seed: int, shifted: tuple[str, ...] = (), n: int = ITEMS) -> list[dict]:
    """Complete moderation results: low scores (beta(1, 12)), or high ones (beta(5, 2)) in ``shifted``;
    decisions by the bundled policy, so high scores mean more blocks."""
    rng = np.random.default_rng(seed)
    policy = Policy.load()
    out = []
    for i in range(n):
        scores = {c: float(rng.beta(5, 2) if c in shifted else rng.beta(1, 12)) for c in CATEGORIES}
        decision = policy.decide(scores).to_dict()
        modalities = list(MIXES[rng.choice(len(MIXES), p=[0.5, 0.3, 0.15, 0.05])])
        out.append({"id": f"item-{seed}-{i}", "scores": scores, "flagged": decision["flagged"], "decision": decision,
                    "attribution": {c: {"driven_by": modalities[0], "contributions": {modalities[0]: 0.1}}
                                    for c in CATEGORIES},
                    "evidence": {}, "modalities": modalities, "model_version": "m@1",
                    "policy_version": decision["policy_version"]})
    return out


def scan_output(folder, items: list[dict]) -> str:
    writer = ScanWriter(str(folder), CATEGORIES, rows_per_file=700)
    writer.add(result_rows([ModerationResult.from_json(item) for item in items], NOW))
    writer.flush()
    return str(folder)


@pytest.fixture(scope="module")
def windows(tmp_path_factory):
    root = tmp_path_factory.mktemp("windows")
    return {"reference": scan_output(root / "reference", results(seed=1)),
            "shifted": scan_output(root / "shifted", results(seed=2, shifted=SHIFTED)),
            "unshifted": scan_output(root / "unshifted", results(seed=3))}


def monitor(reference: str, current: str, out, *extra: str) -> tuple[int, dict | None]:
    code = main(["monitor", "--reference", reference, "--current", current, "--out", str(out), *extra])
    report = out / "monitor.json"
    return code, json.loads(report.read_text()) if report.exists() else None


def test_a_scan_output_window_reads_back_whole(windows):
    rows = read_window(windows["reference"])
    assert len(rows) == ITEMS and len({r["id"] for r in rows}) == ITEMS
    assert set(rows[0]) == {"id", "scores", "action", "modalities"}
    assert list(rows[0]["scores"]) == CATEGORIES
    assert {r["action"] for r in rows} <= {"allow", "review", "restrict", "block"}


def test_a_shifted_window_alarms_and_exits_1(windows, tmp_path, capsys):
    code, report = monitor(windows["reference"], windows["shifted"], tmp_path)
    assert code == FAILED_EXIT == 1
    assert report["ok"] is False
    assert {a["name"] for a in report["alarms"] if a["kind"] == "psi"} == set(SHIFTED)
    assert {report["categories"][c]["band"] for c in SHIFTED} == {"major"}
    block = report["actions"]["shares"]["block"]
    assert block["change"] > 0.05 and "block" in {a["name"] for a in report["alarms"] if a["kind"] == "action_rate"}
    assert not [a for a in report["alarms"] if a["kind"] == "modality_share"]
    assert report["reference"] == {"items": ITEMS, "source": windows["reference"]}
    page = (tmp_path / "monitor.html").read_text()
    assert "ALARM" in page and page.count("data:image/png;base64,") == len(CATEGORIES)
    printed = capsys.readouterr().out
    assert "ALARM" in printed and "psi hate" in printed and str(tmp_path / "monitor.html") in printed


def test_a_window_from_the_same_distribution_passes(windows, tmp_path):
    code, report = monitor(windows["reference"], windows["unshifted"], tmp_path)
    assert code == 0, report["alarms"]
    assert report["ok"] is True and report["alarms"] == []
    assert {row["band"] for row in report["categories"].values()} == {"stable"}
    assert ">OK: 0 alarm(s)<" in (tmp_path / "monitor.html").read_text()


def test_a_jsonl_window_of_served_results_works(windows, tmp_path):
    served = tmp_path / "served.jsonl"
    with served.open("w") as handle:
        for result in results(seed=4, shifted=("sexual",)):
            handle.write(json.dumps({**result, "request_id": None, "latency_ms": {"total": 12.5}}) + "\n")
        handle.write("\n")  # a blank line is skipped
    code, report = monitor(windows["reference"], str(served), tmp_path / "out")
    assert code == FAILED_EXIT
    assert report["current"] == {"items": ITEMS, "source": str(served)}
    assert [a["name"] for a in report["alarms"] if a["kind"] == "psi"] == ["sexual"]
    # The same served file against itself: nothing moved.
    code, report = monitor(str(served), str(served), tmp_path / "self")
    assert code == 0 and report["ok"] and all(row["psi"] == 0 for row in report["categories"].values())


def test_bars_from_a_file_apply(windows, tmp_path):
    bars = tmp_path / "bars.yaml"
    bars.write_text("max_psi: 1000.0\nmax_action_rate_change: 1.0\n")
    code, report = monitor(windows["reference"], windows["shifted"], tmp_path / "out", "--bars", str(bars))
    assert code == 0 and report["bars"]["max_psi"] == 1000.0 and report["bars"]["min_window_items"] == 100


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert lines[0].startswith("tripwire monitor: error: "), lines[0]
    return lines[0]


def test_a_missing_path_is_one_line_and_exit_2(windows, tmp_path, capsys):
    missing = str(tmp_path / "no-such-window")
    code, report = monitor(windows["reference"], missing, tmp_path / "out")
    assert code == USAGE_EXIT == 2 and report is None
    assert missing in one_error_line(capsys)


def test_a_bad_jsonl_line_names_its_number(windows, tmp_path, capsys):
    served = tmp_path / "served.jsonl"
    lines = [json.dumps(r) for r in results(seed=5, n=150)]
    lines[41] = json.dumps({"id": "x", "decision": {"action": "allow"}})  # no scores: line 42
    served.write_text("\n".join(lines) + "\n")
    code, _ = monitor(windows["reference"], str(served), tmp_path / "out")
    assert code == USAGE_EXIT
    assert "line 42" in one_error_line(capsys)
    served.write_text("\n".join(lines[:3] + ["{not json"]) + "\n")
    assert monitor(windows["reference"], str(served), tmp_path / "out")[0] == USAGE_EXIT
    assert "line 4" in one_error_line(capsys)


def test_a_too_small_window_is_an_error_not_a_pass(windows, tmp_path, capsys):
    small = scan_output(tmp_path / "small", results(seed=6, n=40))
    code, report = monitor(windows["reference"], small, tmp_path / "out")
    assert code == USAGE_EXIT and report is None
    assert "40 items" in one_error_line(capsys)


def test_a_folder_that_is_not_a_scan_output_is_refused(windows, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert monitor(windows["reference"], str(tmp_path / "empty"), tmp_path / "out")[0] == USAGE_EXIT
    assert "not a scan output" in one_error_line(capsys)
