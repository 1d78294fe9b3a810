"""The evaluation framework on the session's trained model with real Ray: a held-out golden set scored
through the scan's pipeline, metrics that agree with an independent computation from the scan's rows,
reproducible intervals, a refused tampered set, tuned thresholds that the served graph applies, and a
comparison whose promotion gate fails with the failing bar named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from helpers import assert_same_result, deploy
from tripwire.common.config import from_dict

pytestmark = pytest.mark.integration

def test_metrics_agree_with_the_scan_rows_and_the_labels(trained, heldout, evaluated):
    from tripwire.evaluation.golden import manifest_uri
    from tripwire.evaluation.classification import roc_auc
    from tripwire.data.sample import read_manifest
    from tripwire.scan.output import read_results

    report, out = evaluated
    golden, catalogue = heldout
    samples = {s.id: s for s in read_manifest(manifest_uri(golden, catalogue))}
    rows = {r["id"]: r for r in read_results(report["scan"])}
    assert set(rows) == set(samples) and report["scored"] == len(samples) == golden.items
    assert report["golden"]["sha256"] == golden.sha256 and report["quarantined"] == 0
    # Training exported thresholds chosen on its validation split; evaluation (like serving) applies them.
    from tripwire.model.checkpoint import CheckpointManifest
    from tripwire.policy import Policy

    _, summary = trained
    recommended = CheckpointManifest.read(summary["model_dir"]).recommended_policy
    assert recommended is not None
    policy = Policy.load(recommended)
    assert report["policy_version"] == policy.version != Policy.load().version
    assert policy.evidence["chosen_on"] == "validation split" and policy.evidence["validation_items"] > 0
    for category, entry in report["overall"]["categories"].items():
        labelled = [i for i, s in samples.items() if category in s.labels]
        y = np.array([samples[i].labels[category] for i in labelled])
        s = np.array([rows[i]["scores"][category] for i in labelled])
        assert entry["labelled"] == len(labelled) and entry["positives"] == int(y.sum())
        if 0 < y.sum() < len(y):
            assert entry["metrics"]["roc_auc"]["value"] == pytest.approx(roc_auc(y, s), abs=1e-6), category
        # At the policy: flagged = the core's reasons for this category reached restrict (or block).
        flagged = np.array([any(r["category"] == category and r["action"] in ("restrict", "block")
                                for r in rows[i]["reasons"]) for i in labelled])
        assert entry["confusion"]["tp"] == int((flagged & (y == 1)).sum())
        assert entry["confusion"]["fp"] == int((flagged & (y == 0)).sum())
    actions = [r["action"] for r in rows.values()]
    for action, estimate in report["overall"]["actions"].items():
        assert estimate["value"] == pytest.approx(actions.count(action) / len(actions), abs=1e-6)
    # Slices name their fields; the modality mixes of the synthetic corpus are there.
    assert any(name.startswith("modalities=") for name in report["slices"])
    written = json.loads((open(f"{out}/metrics.json").read()))
    assert written["overall"] == report["overall"]
    html = open(f"{out}/report.html", encoding="utf-8").read()
    assert golden.name in html and "<img" in html


def test_a_second_run_reuses_the_scan_and_gives_the_same_figures(trained, heldout, evaluated, eval_config, capsys):
    from pipelines.evaluate import make_job, run

    report, out = evaluated
    _, summary = trained
    golden, catalogue = heldout
    again = run(make_job(summary["model_dir"], golden.name, out, catalogue=catalogue, config=eval_config))
    assert f"{golden.items} already done" in capsys.readouterr().out
    assert again["overall"] == report["overall"] and again["slices"] == report["slices"]


def test_a_tampered_golden_set_is_refused_before_ray_work(trained, heldout, tmp_path, capsys):
    from entrypoints.cli import main
    from tripwire.evaluation.golden import manifest_uri, register

    _, summary = trained
    golden, catalogue = heldout
    original = Path(manifest_uri(golden, catalogue))
    copy = original.with_name("tampered-copy.jsonl")  # beside the media its rows reference
    shutil.copy(original, copy)
    try:
        local_catalogue = str(tmp_path / "catalogue.yaml")
        register("copy", str(copy), golden.categories, "test", "test", "test", catalogue=local_catalogue)
        lines = copy.read_text().splitlines()
        row = json.loads(lines[0])
        row["labels"] = {k: 1 - v for k, v in row["labels"].items()}  # one item relabelled after registration
        copy.write_text("\n".join([json.dumps(row)] + lines[1:]) + "\n")
        code = main(["evaluate", "--checkpoint", summary["model_dir"], "--golden", "copy@1",
                     "--catalogue", local_catalogue, "--out", str(tmp_path / "out")])
    finally:
        copy.unlink()
    err = capsys.readouterr().err
    assert code == 2 and "copy@1: content changed since it was registered" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.replaces_session_app
def test_tuned_thresholds_are_a_new_policy_the_served_graph_applies(trained, heldout, eval_config, evaluated,
                                                                    serve_endpoint, tmp_path):
    from pipelines.thresholds import make_job, run
    from tripwire.moderation.moderator import Moderator
    from tripwire.policy import Policy

    _, summary = trained
    golden, catalogue = heldout
    out = tmp_path / "policy.tuned.yaml"
    # Tuning works in the evaluation's folder: the golden set's scores under this model and policy are reused.
    _, eval_out = evaluated
    result = run(make_job(summary["model_dir"], golden.name, str(out), eval_out, targets=["review:recall=0.8"],
                          min_positives=2, catalogue=catalogue, config=eval_config))
    tuned = Policy.load(out)
    assert tuned.version == result["version"] and tuned.evidence["golden_sha256"] == golden.sha256
    chosen = {c: e for c, e in tuned.evidence["categories"].items() if "actions" in e}
    assert chosen, tuned.evidence
    load = tuned.evidence["review_load"]  # the evaluation config's review capacity holds the band
    assert load["capacity"] == 0.05 and load["fits"] and load["overall"] <= 0.05
    for category, entry in chosen.items():
        review = entry["actions"]["review"]
        assert tuned.categories[category].review == review["threshold"]
        if category in load["raised"]:  # raised past the target to fit the capacity, and saying so
            assert "review capacity" in review["capacity"]
        else:
            assert review["achieved"]["recall"]["value"] >= 0.8
    # The session's model deployed with the tuned policy (not the default app first: this replaces it).
    url, model_dir = serve_endpoint["url"], serve_endpoint["model_dir"]
    try:
        deploy({**serve_endpoint["app_args"], "policy": yaml.safe_load(out.read_text())})
        text = "tuned thresholds"
        answer = httpx.post(f"{url}/v1/moderate", json={"id": "t", "text": text}, timeout=60).json()
        assert answer["policy_version"] == tuned.version
        from tripwire.data.sample import Sample

        [expected] = Moderator.local(model_dir, tuned).moderate_sync([Sample(id="t", text=text)])
        assert_same_result(answer, expected, where="served with the tuned policy")
    finally:
        serve_endpoint["deployed"] = False  # the next test that needs the session app redeploys the default


def test_compare_flags_the_regression_and_the_gate_fails_naming_the_bar(trained, heldout, eval_config, tmp_path,
                                                                        capsys):
    from entrypoints.cli import main
    from tripwire.policy import Policy
    from tripwire.evaluation.thresholds import policy_yaml

    _, summary = trained
    golden, catalogue = heldout
    # The baseline policy reviews everything, the candidate's never acts on anything: every positive the
    # baseline sent to review the candidate lets through.
    base = Policy.load()
    for version, rule in (("lenient", {}), ("review-all", {"review": 0.0})):
        policy = from_dict(Policy, {**yaml.safe_load(policy_yaml(base)), "version": version,
                                    "categories": {c: rule for c in base.categories}, "markets": {}}, version)
        (tmp_path / f"{version}.yaml").write_text(policy_yaml(policy))
    (tmp_path / "gate.yaml").write_text(yaml.safe_dump({"bars": [
        {"name": "positives still reach review", "metric": "catch_rate", "scope": "category", "max_drop": 0.0},
        {"name": "false positives do not rise", "metric": "fpr", "scope": "category", "max_rise": 0.0}]}))
    out = tmp_path / "compare"
    code = main(["compare", "--baseline", summary["model_dir"], "--candidate", summary["model_dir"],
                 "--baseline-policy", str(tmp_path / "review-all.yaml"),
                 "--candidate-policy", str(tmp_path / "lenient.yaml"), "--golden", golden.name,
                 "--catalogue", catalogue, "--gate", str(tmp_path / "gate.yaml"), "--config", eval_config,
                 "--out", str(out)])
    printed = capsys.readouterr().out
    report = json.loads((out / "metrics.json").read_text())
    assert report["candidate"]["policy_version"] == "lenient" and report["baseline"]["policy_version"] == "review-all"
    caught = {c: m["catch_rate"] for c, m in report["sets"][golden.name]["categories"].items()}
    dropped = {c for c, e in caught.items() if e["baseline"] and e["candidate"] == 0.0}
    assert dropped, caught  # the baseline reviews every positive of this set
    assert all(caught[c]["regression"] for c in dropped if caught[c]["baseline"] == 1.0)
    bars = {b["name"]: b for b in report["gate"]["bars"]}
    assert code == 1 and not report["gate"]["passed"] and "gate FAILED" in printed
    assert not bars["positives still reach review"]["passed"]
    failures = bars["positives still reach review"]["failures"]
    assert {f["where"] for f in failures if f["value"] is not None} == {f"{golden.name}/{c}" for c in dropped}
    # A category without positives in the set has no catch rate on either side: it fails the bar, saying so.
    assert all(f["reason"].startswith("undefined: catch_rate is undefined") for f in failures if f["value"] is None)
    assert bars["false positives do not rise"]["passed"]
    assert (out / "report.html").exists()
