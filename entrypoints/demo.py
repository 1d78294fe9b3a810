"""The main job end to end on the embedded default: corpus -> train -> serve -> real HTTP requests ->
evaluation of the held-out split (scored by the scan pipeline), with its HTML report.

The held-out split is the synthetic corpus's own (``data.split_by: meta.split``): its items carry signature
variants (phrasings, colours, shapes, tones) that no training item carries, so the figures the demo prints
per category and per carrying modality measure what carries over to unseen variants, not memorisation.
A few everyday messages, none of them a training text, go through the served graph too: they must be allowed.

``make demo`` (``python -m entrypoints.demo``) and ``tripwire demo`` run this; options and user errors are
handled by :mod:`entrypoints.cli`. Everything is local: a Ray instance in this process, the synthetic
corpus, checkpoints under ``runs/``, and the Serve HTTP proxy on 127.0.0.1.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import httpx

import numpy as np

from tripwire.common.config import load_yaml
from tripwire.evaluation.classification import roc_auc
from tripwire.moderation.moderator import SIGNAL_LABELS, Moderator
from tripwire.moderation.parity import result_differences
from tripwire.moderation.result import ModerationResult
from tripwire.policy import Taxonomy
from tripwire.data.sample import Sample, manifest_base, read_manifest, request_body
from tripwire.data.splits import read_splits
from tripwire.training.config import TrainConfig

# Ordinary messages, none of them in the corpus's training texts (the demo says so for each): the model
# must allow them. "hi" and the sunny morning were flagged by a model trained on a corpus without small talk.
EVERYDAY_INPUTS = ["hi", "what a lovely sunny morning", "thanks, see you at the station tomorrow",
                   "can you recommend a good pizza place?", "my grandma turns ninety today"]
# The held-out report's rows: the modality that carries the signature (meta.carrier) and which benign items
# it is told apart from (those that have that modality).
CARRIER_ROWS = [("text", "text", ("text",)), ("image", "image", ("image",)), ("audio", "audio", ("audio",)),
                ("video frames", "video", ("video",)), ("video soundtrack", "soundtrack", ("video",)),
                ("combination", "combination", ("text",))]


def pick_items(cfg: TrainConfig, model_dir: str, per_mix: int = 2, limit: int = 16):
    """Held-out (validation) items covering every modality mix, violating ones first within each mix."""
    splits = read_splits(f"{model_dir}/splits.parquet")
    by_mix: dict[tuple, list] = {}
    for sample in read_manifest(cfg.data.manifest):
        if splits.get(sample.id) != "val":
            continue
        by_mix.setdefault(tuple(sample.modalities), []).append(sample)
    chosen = []
    for mix in sorted(by_mix, key=len):
        items = sorted(by_mix[mix], key=lambda s: -sum(s.labels.values()))
        chosen += items[:1] + [s for s in items if not any(s.labels.values())][:per_mix - 1]
    return chosen[:limit]


def _interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if not len(values):
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2 * 100
    return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))


def modality_figures(samples: list[Sample], results: dict[str, ModerationResult], replicates: int = 1000,
                     seed: int = 0) -> list[dict]:
    """Held-out figures per carrying modality, with 95% bootstrap intervals.

    For each row of :data:`CARRIER_ROWS`: the violating items whose signature that modality carries
    (``meta.carrier``) against the benign items that have the modality. ``roc_auc`` ranks them by the item's
    highest category score; ``flagged`` is the share of violating items the decision does not allow,
    ``benign_flagged`` that of benign ones; ``right_category`` the share of violating items whose top-scoring
    category is one of their labels. Intervals resample violating and benign items separately.
    """
    rng = np.random.default_rng(seed)
    scored = [s for s in samples if s.id in results]
    benign = [s for s in scored if not any(v == 1 for v in s.labels.values())]
    rows = []
    for name, carrier, needs in CARRIER_ROWS:
        positives = [s for s in scored if s.meta.get("carrier") == carrier]
        negatives = [s for s in benign if all(m in s.modalities for m in needs)
                     and (carrier != "combination" or {"image", "video"} & set(s.modalities))]
        if not positives or not negatives:
            rows.append({"modality": name, "violating": len(positives), "benign": len(negatives)})
            continue

        def top(sample):
            return max(results[sample.id].scores.values())

        def flagged(sample):
            return results[sample.id].action != "allow"

        pos_scores, neg_scores = np.array([top(s) for s in positives]), np.array([top(s) for s in negatives])
        pos_flags = np.array([flagged(s) for s in positives], float)
        neg_flags = np.array([flagged(s) for s in negatives], float)
        right = np.array([s.labels.get(max(results[s.id].scores, key=results[s.id].scores.get)) == 1
                          for s in positives], float)
        labels = np.r_[np.ones(len(positives)), np.zeros(len(negatives))]
        boot = {"roc_auc": [], "flagged": [], "benign_flagged": [], "right_category": []}
        for _ in range(replicates):
            i = rng.integers(len(positives), size=len(positives))
            j = rng.integers(len(negatives), size=len(negatives))
            boot["roc_auc"].append(roc_auc(labels, np.r_[pos_scores[i], neg_scores[j]]))
            boot["flagged"].append(pos_flags[i].mean())
            boot["benign_flagged"].append(neg_flags[j].mean())
            boot["right_category"].append(right[i].mean())
        point = {"roc_auc": roc_auc(labels, np.r_[pos_scores, neg_scores]), "flagged": pos_flags.mean(),
                 "benign_flagged": neg_flags.mean(), "right_category": right.mean()}
        rows.append({"modality": name, "violating": len(positives), "benign": len(negatives),
                     **{k: {"value": float(v), "ci": _interval(np.asarray(boot[k]))} for k, v in point.items()}})
    return rows


def _fmt(estimate: dict | None) -> str:
    if not estimate or estimate.get("value") is None or not np.isfinite(estimate["value"]):
        return "n/a"
    lo, hi = estimate.get("ci") or (None, None)
    if lo is None or not np.isfinite(lo):
        return f"{estimate['value']:.3f}"
    return f"{estimate['value']:.3f} [{lo:.3f}, {hi:.3f}]"


def print_heldout_report(evaluation: dict, figures: list[dict], heldout_items: int) -> None:
    """Per category (the evaluation's figures) and per modality (:func:`modality_figures`), with intervals."""
    overall = evaluation["overall"]
    print(f"\n[held-out] {heldout_items} items whose phrasings, colours, shapes and tones training never saw; "
          "95% bootstrap intervals")
    print(f"{'category':<26}{'pos':>5}  {'ROC-AUC':<24}{'PR-AUC':<24}F1 at the policy")
    for category, entry in overall["categories"].items():
        m = entry["metrics"]
        print(f"{category:<26}{entry['positives']:>5}  {_fmt(m.get('roc_auc')):<24}{_fmt(m.get('pr_auc')):<24}"
              f"{_fmt(m.get('f1'))}")
    macro = overall["macro"]
    print(f"{'macro':<26}{'':>5}  {_fmt(macro.get('roc_auc')):<24}{_fmt(macro.get('pr_auc')):<24}{_fmt(macro.get('f1'))}")
    print(f"\n{'signature carried by':<22}{'viol.':>6}{'benign':>7}  {'ROC-AUC vs benign':<24}{'violating flagged':<24}"
          f"{'benign flagged':<24}right category")
    for row in figures:
        print(f"{row['modality']:<22}{row['violating']:>6}{row['benign']:>7}  {_fmt(row.get('roc_auc')):<24}"
              f"{_fmt(row.get('flagged')):<24}{_fmt(row.get('benign_flagged')):<24}{_fmt(row.get('right_category'))}")
    print("(benign: held-out items with no violation that have the modality; combination: text with an image or "
          "video. The best epoch, calibration and policy thresholds were chosen on this split.)", flush=True)


def heldout_auc(evaluation: dict, summary: dict, category: str) -> float:
    """A category's held-out ROC-AUC from the evaluation, or training's validation figure if it has none."""
    entry = evaluation["overall"]["categories"].get(category, {}).get("metrics", {}).get("roc_auc") or {}
    value = entry.get("value")
    return float(value) if value is not None else float(summary["val_metrics"][category]["roc_auc"])


def training_texts(cfg: TrainConfig, model_dir: str) -> set[str]:
    splits = read_splits(f"{model_dir}/splits.parquet")
    return {s.text for s in read_manifest(cfg.data.manifest) if s.text and splits.get(s.id) == "train"}


def wait_healthy(url: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v1/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not become healthy in {timeout_s}s")


SERVE_LOGGING = {"log_level": "WARNING", "enable_access_log": False}  # the demo prints its own lines
# Spoken clips for the speech expert (espeak-ng, 16 kHz FLAC; how they were made: media/README.md).
SPOKEN_MEDIA = Path(__file__).resolve().parent / "media"
RAY_DATA_LOGGING = Path(__file__).resolve().parents[1] / "pipelines" / "configs" / "ray-data-logging.yaml"


def quiet_console() -> None:
    """Before Ray starts (its processes inherit the environment): the console gets the demo's report and
    real warnings, not every process's start-up chatter. Everything still goes to Ray's session logs."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # "Loading weights" bars in every process
    os.environ.setdefault("RAY_DATA_LOGGING_CONFIG", str(RAY_DATA_LOGGING))  # Ray Data's INFO lines in actors
    # A notice on every start of a local instance (token authentication stays on).
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)


def evaluate_heldout(model_dir: str) -> tuple[dict, dict[str, dict]]:
    """The held-out split registered as a golden set and evaluated (``tripwire evaluate``, which scores it
    with ``tripwire scan``'s pipeline); returns the report and the scan's results by id."""
    from pipelines.evaluate import make_job, run as run_evaluation
    from pipelines.golden_sets import register_heldout
    from tripwire.scan.output import read_results

    golden, new = register_heldout(model_dir)
    print(f"\n[evaluate] golden set {golden.ref} ({'registered' if new else 'already registered'}): "
          f"{golden.items} held-out items", flush=True)
    out = str(Path(model_dir).parent / "eval")
    report = run_evaluation(make_job(model_dir, golden.ref, out, config="pipelines/configs/evaluate.yaml"))
    return report, {row["id"]: ModerationResult.from_row(row) for row in read_results(report["scan"])}


def speak_clips(url: str, local: Moderator) -> tuple[int, list[str], list[str]]:
    """The spoken clips (``entrypoints/media``, espeak-ng voices) through the served graph: what the speech
    expert heard, with times, and the decision. Returns how many were sent, their differences from the
    in-process core's results, and the benign clips that were restricted or blocked."""
    clips = [Sample(id=f"spoken-{path.stem}", audio=path.name) for path in sorted(SPOKEN_MEDIA.glob("*.flac"))]
    if "speech" not in local.manifest.experts:
        print("\n[speech] the checkpoint names no speech expert (model.experts.speech): spoken clips skipped")
        return 0, [], []
    differences, restricted = [], []
    print(f"\n{'spoken clip':<16}{'heard (start-end s)':<72}{'top score':<30}{'decision':<10}driven by")
    with httpx.Client(timeout=120) as client:
        for sample, expected in zip(clips, local.moderate_sync(clips, str(SPOKEN_MEDIA))):
            response = client.post(f"{url}/v1/moderate", json=request_body(sample, str(SPOKEN_MEDIA)))
            response.raise_for_status()
            answer = ModerationResult.from_json(response.json())
            differences += [f"{sample.id}: {d}" for d in result_differences(answer, expected)]
            heard = answer.evidence.get("speech", {})
            segments = heard.get("segments") or [{"text": "(nothing)", "start_s": 0.0, "end_s": 0.0}]
            top_name = max(answer.scores, key=answer.scores.get)
            for i, segment in enumerate(segments):
                said = f"{segment['text'][:56]} ({segment['start_s']:.1f}-{segment['end_s']:.1f})"
                if i == 0:
                    top = f"{top_name}={answer.scores[top_name]:.3f}"
                    print(f"{sample.id:<16}{said:<72}{top:<30}{answer.action:<10}"
                          f"{answer.attribution[top_name]['driven_by']}")
                else:
                    print(f"{'':<16}{said}")
            held = answer.evidence.get("unevaluated_signals", {})
            if held:
                print(f"{'':<16}held at review (no real evaluation): "
                      + ", ".join(f"{c} by {'+'.join(w['signals'])}" for c, w in held.items()))
            if "benign" in sample.id and answer.action in ("restrict", "block"):
                restricted.append(f"{sample.id}: {answer.action}")
    return len(clips), differences, restricted


# Pictures with text drawn in them, made at run time over photographs that install with pinned wheels.
PICTURES = (("meme-threat", "chelsea", "We know where you live. You will pay for this tomorrow"),
            ("caption-benign", "coffee", "Sunday morning coffee with friends before the match"))


def draw_pictures(folder: Path) -> list[Sample]:
    """The demo's pictures: a meme (white outlined text over a photograph) and a captioned photograph."""
    import random

    from tripwire.data.rendered import RenderRecipe, bundled_photos, render

    folder.mkdir(parents=True, exist_ok=True)
    photos = {p.stem: p for p in bundled_photos()}
    samples = []
    for name, photo, text in PICTURES:
        layout = "meme" if name.startswith("meme") else "caption"
        recipe = RenderRecipe(layouts=(layout,), sizes=(30,), rotations=(0.0,), jpeg_qualities=(85,),
                              fonts=("DejaVuSans-Bold",), colours=(("#000000", "#ffffff"),))
        picture, _ = render(text, random.Random(0), recipe, [photos[photo]])
        picture.save(folder / f"{name}.jpg", quality=85)
        samples.append(Sample(id=name, image=f"{name}.jpg"))
    return samples


def read_pictures(url: str, local: Moderator, folder: Path) -> list[str]:
    """The pictures through the served graph: the text OCR read in each, where (its box), what the text model
    scored it, and the nudity expert's probability. Returns the differences from the in-process core's results."""
    if "ocr" not in local.manifest.experts:
        print("\n[pictures] the checkpoint names no OCR expert (model.experts.ocr): pictures skipped")
        return []
    samples = draw_pictures(folder)
    differences = []
    print(f"\n{'picture':<16}{'read (box x0,y0-x1,y1)':<72}{'decided on':<30}{'decision':<10}driven by")
    with httpx.Client(timeout=120) as client:
        for sample, expected in zip(samples, local.moderate_sync(samples, str(folder))):
            response = client.post(f"{url}/v1/moderate", json=request_body(sample, str(folder)))
            response.raise_for_status()
            answer = ModerationResult.from_json(response.json())
            differences += [f"{sample.id}: {d}" for d in result_differences(answer, expected)]
            blocks = answer.evidence.get("image_text", {}).get("blocks") or [{"text": "(nothing)", "box": [0, 0, 0, 0]}]
            # The category the decision acted on (else the top score), and the signal that drove it.
            acted = [r for r in answer.decision.reasons if r.action == answer.action]
            name = acted[0].category if acted else max(answer.scores, key=answer.scores.get)
            score = acted[0].score if acted else answer.scores[name]
            for i, block in enumerate(blocks):
                x0, y0, x1, y1 = block["box"]
                read = f"{block['text'][:50]} ({x0},{y0}-{x1},{y1})"
                if i == 0:
                    driver = answer.attribution[name]["driven_by"]
                    print(f"{sample.id:<16}{read:<72}{name + '=' + format(score, '.3f'):<30}"
                          f"{answer.action:<10}{SIGNAL_LABELS.get(driver, driver)}")
                else:
                    print(f"{'':<16}{read}")
            if "nudity" in answer.evidence:
                print(f"{'':<16}nudity expert: {answer.evidence['nudity']['score']:.4f}")
            held = answer.evidence.get("unevaluated_signals", {})
            if held:
                print(f"{'':<16}held at review (no real evaluation): "
                      + ", ".join(f"{c} by {'+'.join(w['signals'])}" for c, w in held.items()))
    return differences


EPISODE = SPOKEN_MEDIA / "episode.opus"  # 1 min 48 s; the threat is said at 1:11-1:16 (make_episode.py)
EPISODE_THREAT_S = (71.0, 75.7)


def moderate_episode(url: str, local: Moderator) -> list[str]:
    """The few-minute episode through the asynchronous job API (``POST /v1/jobs``, then its progress), scored
    window by window; prints the worst window of each category the speech raised, with its time and what was
    said. The in-process core scores the same file meanwhile; returns the differences between the two."""
    from concurrent.futures import ThreadPoolExecutor

    from tripwire.common.progress import clock

    if "speech" not in local.manifest.experts:
        return []
    sample = Sample(id="episode", audio=str(EPISODE))
    print(f"\n[episode] {EPISODE.name} ({clock(local_seconds(EPISODE))}) -> POST /v1/jobs (long media, by URI)",
          flush=True)
    with ThreadPoolExecutor(1) as pool, httpx.Client(timeout=60) as client:
        accepted = client.post(f"{url}/v1/jobs", json={"id": sample.id, "audio": f"file://{EPISODE}"})
        accepted.raise_for_status()
        location = f"{url}{accepted.headers['location']}"
        expected = pool.submit(local.moderate_long_sync, sample)  # on the other core, meanwhile
        shown = None
        while (job := client.get(location).json())["status"] not in ("done", "failed"):
            progress = job["progress"] or {}
            if progress.get("done_s") and progress["done_s"] != shown:
                shown = progress["done_s"]
                print(f"[episode] job {job['status']}: {clock(shown)} of {clock(progress['total_s'] or 0)} scored",
                      flush=True)
            time.sleep(1.0)
        if job["status"] == "failed":
            return [f"episode: the job failed: {job['error']}"]
        answer = ModerationResult.from_json(job["result"])
        differences = [f"episode: {d}" for d in result_differences(answer, expected.result())]
    windows = answer.evidence["windows"]
    print(f"[episode] {windows['count']} windows of {windows['window_s']:g}s every {windows['hop_s']:g}s; "
          f"decision {answer.action}; the worst window of each category the speech raised:")
    for category, score in sorted(answer.scores.items(), key=lambda item: -item[1]):
        if answer.attribution[category]["driven_by"] != "speech":
            continue
        top = windows["worst"][category][0]
        span = top.get("span", top)
        print(f"  {category:<24}{score:.3f}  at {clock(span['start_s'])}-{clock(span['end_s'])} "
              f"(window {clock(top['start_s'])}-{clock(top['end_s'])}): {top.get('excerpt', '')!r}")
    threat = windows["worst"]["harassment"][0]
    found = threat["start_s"] <= EPISODE_THREAT_S[0] and EPISODE_THREAT_S[1] <= threat["end_s"]
    print(f"[episode] the threat ({clock(EPISODE_THREAT_S[0])}-{clock(EPISODE_THREAT_S[1])}) is in the worst "
          f"harassment window: {'yes' if found else 'no'}")
    return differences


def local_seconds(path: Path) -> float:
    from tripwire.data.longform import WindowConfig, media_seconds

    return media_seconds("audio", str(path), None, WindowConfig()) or 0.0


def demo_store(model_dir: str) -> str:
    """The demo's one database: the review queue and the decision log."""
    return str(Path(model_dir).parent / "review.db")


def queue_for_review(model_dir: str, scan_out: str) -> None:
    """The evaluation scan's review-band decisions into a review store, and how to open the reviewer app."""
    from tripwire.model.checkpoint import CheckpointManifest
    from tripwire.review.intake import queue_items
    from tripwire.scan.output import scan_manifest
    from tripwire.review.store import open_store
    from tripwire.scan.output import read_review_candidates

    store_path = demo_store(model_dir)
    manifest = CheckpointManifest.read(model_dir)
    store = open_store(store_path, manifest.categories, list(manifest.policy().categories))
    try:
        new = store.enqueue(queue_items(read_review_candidates(scan_out), scan_manifest(scan_out), "scan", "demo",
                                        scan_out=scan_out))
        token = store.add_reviewer("demo-admin", "admin")
        counts = store.counts()
    finally:
        store.close()
    print(f"\n[review] {new} review-band decision(s) queued ({counts['pending']} pending) in {store_path}; "
          f"to review them:\n[review]   .venv/bin/tripwire review-ui --store {store_path} --decision-log {store_path}"
          f"   then open "
          f"http://127.0.0.1:8300/ and sign in with token {token}", flush=True)


def compliance_outputs(model_dir: str, scan_out: str) -> None:
    """The evaluation scan's decisions into the decision log (the served ones are there already), then
    today's statements of reasons and transparency report from it."""
    import datetime

    from tripwire.model.checkpoint import CheckpointManifest
    from tripwire.compliance.cases import period
    from tripwire.compliance.dsa import DsaMapping
    from tripwire.compliance.report import report_from_log
    from tripwire.compliance.report_page import write_report
    from tripwire.compliance.scan_log import log_scan
    from tripwire.compliance.statement_export import export_statements
    from tripwire.compliance.decision_log import DecisionLog

    store_path, out = demo_store(model_dir), Path(model_dir).parent / "compliance"
    log = DecisionLog(store_path)
    try:
        scanned = log_scan(scan_out, log, CheckpointManifest.read(model_dir).policy())
        verified = log.verify()
        today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
        start, end = period(today, today)
        sor = export_statements(store_path, start, end, out / "sor", DsaMapping.load())
        report = report_from_log(store_path, start, end)
        page = write_report(report, out / "report")
    finally:
        log.close()
    print(f"\n[compliance] decision log {store_path}: {verified.checked} record(s) ({scanned} new from the scan), "
          f"hash chain verified: {verified.ok}; {sor['exported']} new statement(s) of reasons in "
          f"{len(sor['files'])} API batch file(s) -> {out / 'sor'}; transparency report ({report.decisions} decisions, "
          f"{report.enforced} enforced) -> {page}", flush=True)


def run(config: str, port: int, min_auc: float) -> int:
    """Runs the demo; returns the exit status (1 when a check fails).

    Args:
        config: the training config YAML.
        port: the Serve HTTP port on 127.0.0.1.
        min_auc: every category's held-out ROC-AUC (unseen signature variants) must reach this.
    """
    cfg = load_yaml(TrainConfig, config).resolved(Path.cwd())  # a bad file fails here, before Ray starts
    quiet_console()

    import ray
    from ray import serve

    from deployments.app import build_app
    from pipelines.train import run as run_training

    started = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), log_to_driver=True)
    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # the demo prints what was deployed, and where
    try:
        summary = run_training(cfg)
        trained_at = time.perf_counter()
        taxonomy = Taxonomy.load(cfg.taxonomy)
        model_dir = summary["model_dir"]

        print(f"\n[serve] deploying {model_dir} on http://127.0.0.1:{port}", flush=True)
        serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config=SERVE_LOGGING)
        # Every answer is logged (hash chain) in the demo's store, the same database as its review queue.
        store = str(Path(demo_store(model_dir)).resolve())
        serve.run(build_app({"checkpoint": model_dir, "decision_log": store, "jobs_store": store,
                             "uri_allow_list": [f"file://{SPOKEN_MEDIA}/"]}), name="tripwire",
                  route_prefix="/", logging_config=SERVE_LOGGING)
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url)
        served_at = time.perf_counter()

        base = manifest_base(cfg.data.manifest)
        samples = pick_items(cfg, model_dir)
        local = Moderator.local(model_dir)
        reference = local.moderate_sync(samples, base)
        http_differences: list[str] = []
        print(f"\n{'id':<11}{'modalities':<24}{'true labels':<34}{'top score':<32}{'decision':<10}driven by")
        with httpx.Client(timeout=60) as client:
            for sample, expected in zip(samples, reference):
                response = client.post(f"{url}/v1/moderate", json=request_body(sample, base))
                response.raise_for_status()
                answer = ModerationResult.from_json(response.json())
                http_differences += [f"{sample.id}: {d}" for d in result_differences(answer, expected)]
                top_name = max(taxonomy.names, key=lambda c: answer.scores[c])
                top = f"{top_name}={answer.scores[top_name]:.3f}"
                truth = ",".join(c for c, v in sample.labels.items() if v) or "-"
                driver = answer.attribution[top_name]["driven_by"]
                print(f"{sample.id:<11}{'+'.join(answer.modalities):<24}{truth:<34}"
                      f"{top:<32}{answer.action:<10}{driver}")
        everyday = [Sample(id=f"everyday-{i}", text=text) for i, text in enumerate(EVERYDAY_INPUTS)]
        seen = training_texts(cfg, model_dir)
        not_allowed = []
        print(f"\n{'everyday input':<44}{'top score':<32}{'decision':<10}in training texts")
        with httpx.Client(timeout=60) as client:
            for sample, expected in zip(everyday, local.moderate_sync(everyday, base)):
                response = client.post(f"{url}/v1/moderate", json=request_body(sample, base))
                response.raise_for_status()
                answer = ModerationResult.from_json(response.json())
                http_differences += [f"{sample.text!r}: {d}" for d in result_differences(answer, expected)]
                top_name = max(taxonomy.names, key=lambda c: answer.scores[c])
                action = answer.action
                if action != "allow":
                    not_allowed.append(f"{sample.text!r}: {action}")
                top = f"{top_name}={answer.scores[top_name]:.3f}"
                print(f"{sample.text!r:<44}{top:<32}{action:<10}{'yes' if sample.text in seen else 'no'}")
        spoken, spoken_differences, spoken_restricted = speak_clips(url, local)
        http_differences += read_pictures(url, local, Path(model_dir).parent / "pictures")
        http_differences += spoken_differences + moderate_episode(url, local)
        print(f"\n[serve] {len(samples) + len(everyday) + spoken + len(PICTURES)} HTTP requests and a job; whole results equal to the in-process "
              f"core's (scores within 1e-5): {not http_differences}")
        serve.shutdown()
        served_done = time.perf_counter()

        evaluation, scanned = evaluate_heldout(model_dir)
        scan_differences = [f"{s.id}: {d}" for s, expected in zip(samples, reference)
                            for d in (result_differences(scanned[s.id], expected) if s.id in scanned
                                      else ["not in the scan's results"])]
        print(f"[evaluate] scan results equal to HTTP and in-process for the {len(samples)} items above: "
              f"{not scan_differences}")
        splits = read_splits(f"{model_dir}/splits.parquet")
        heldout = [s for s in read_manifest(cfg.data.manifest) if splits.get(s.id) == "val"]
        print_heldout_report(evaluation, modality_figures(heldout, scanned), len(heldout))
        # The check reads the evaluation of every held-out item (training's own validation pass drops the few
        # rows that do not split evenly between its workers).
        aucs = {c: heldout_auc(evaluation, summary, c) for c in taxonomy.names}
        queue_for_review(model_dir, evaluation["scan"])
        compliance_outputs(model_dir, evaluation["scan"])
        done = time.perf_counter()
        print(f"[demo] train {trained_at - started:.0f}s, deploy {served_at - trained_at:.0f}s, "
              f"evaluate {done - served_done:.0f}s, total {done - started:.0f}s")
        failing = {c: round(a, 4) for c, a in aucs.items() if not a >= min_auc}
        if failing:
            print(f"[demo] FAIL: categories below held-out ROC-AUC {min_auc}: {failing}", file=sys.stderr)
            return 1
        if not_allowed:
            print(f"[demo] FAIL: everyday inputs not allowed: {not_allowed}", file=sys.stderr)
            return 1
        if spoken_restricted:
            print(f"[demo] FAIL: benign speech restricted or blocked: {spoken_restricted}", file=sys.stderr)
            return 1
        for path, differences in (("HTTP", http_differences), ("scan", scan_differences)):
            if differences:
                print(f"[demo] FAIL: {path} results differ from the in-process core's: {differences[:5]}",
                      file=sys.stderr)
                return 1
        print(f"[demo] OK: every category's held-out ROC-AUC >= {min_auc} (min {min(aucs.values()):.4f}) on unseen "
              f"signature variants; everyday inputs allowed; HTTP, scan and in-process give the same results")
        print(f"[demo] evaluation report (open in a browser): {Path(evaluation['scan']).parent / 'report.html'}")
        return 0
    finally:
        ray.shutdown()


if __name__ == "__main__":
    from entrypoints.cli import main

    sys.exit(main(["demo", *sys.argv[1:]]))
