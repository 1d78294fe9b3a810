"""Long media: what it costs, whether the violating minute is found, how often benign talk is flagged, and how
much the speech path keeps of the text model's quality.

    .venv/bin/python -m bench.bench_longform cost     [--checkpoint runs/demo/model] [--lengths 10 30 60]
    .venv/bin/python -m bench.bench_longform episodes [--checkpoint runs/olid/model] [--episodes 20] [--minutes 3]
    .venv/bin/python -m bench.bench_longform spoken   [--checkpoint runs/olid/model] [--limit N]
    .venv/bin/python -m bench.bench_longform latency  [--checkpoint runs/demo/model]

* ``cost``: episodes of benign OLID tweets read out (``tripwire.data.episodes``) at each length, each moderated in a
  fresh process by the moderation core (the scan actor's code): wall time, real-time factor per core and peak
  memory above the loaded model (flat in the length means bounded by the window); then the longest through
  ``tripwire scan`` (one model actor, the 2-core machine's other core for Ray Data).
* ``episodes``: the registered episodes set (half with one offensive tweet at a recorded time) scanned with
  ``tripwire scan``: the share of violating episodes whose worst ``harassment`` window names a sentence within
  +-5 s of the offensive one (Wilson 95 % interval), and flags per hour of benign talk, under the checkpoint's
  policy and under the same policy with the speech signal evaluated (``--speech-evaluated-on``).
* ``spoken``: OLID's test set typed (``olid-test``) and spoken (``spoken-olid-test``) through ``tripwire evaluate``
  with the same checkpoint and policy: macro-F1 of each and their ratio on the tweets in both, with a paired
  bootstrap interval.
* ``latency``: a 10 s spoken clip through the Serve graph over HTTP at concurrency 1 and 8, beside the same clip
  through the in-process moderation core.

Needs espeak-ng (``make speech-tools``) and ``../shared/datasets/olid``. Writes ``bench/results/longform_<part>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
OLID = REPO.parent / "shared" / "datasets" / "olid"
WORK = REPO / "runs" / "bench" / "longform"
CATEGORY = "harassment"  # OLID's offensive
LOCALISED_S = 5.0


def wilson(hits: int, n: int, z: float = 1.96) -> list[float]:
    if not n:
        return [0.0, 1.0]
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def machine() -> dict:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "commit": _commit()}


def _commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()


def save(part: str, result: dict) -> dict:
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"longform_{part}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def benign_episode(path: Path, minutes: float, seed: int = 0) -> float:
    """An episode of benign OLID test tweets read out, ``minutes`` long; returns its length in seconds."""
    from pipelines.golden_sets import olid_test_samples
    from tripwire.data.episodes import EpisodeRecipe, sentence_pools, write_episode

    if path.exists():
        import soundfile

        return soundfile.info(str(path)).duration
    path.parent.mkdir(parents=True, exist_ok=True)
    recipe = EpisodeRecipe(episodes=1, minutes=minutes, violating_share=0.0, seed=seed)
    benign, _ = sentence_pools(olid_test_samples(str(OLID), path.parent), recipe)
    return write_episode(path, random.Random(f"{seed}:cost:{minutes}"), benign, None, recipe)["duration_s"]


# -- cost -----------------------------------------------------------------------------------------------------
def cost_child(checkpoint: str, audio: str) -> None:
    """One episode through the moderation core in this fresh process: prints wall time and memory as JSON."""
    from tripwire.data.sample import Sample
    from tripwire.moderation.moderator import Moderator

    moderator = Moderator.local(checkpoint)
    moderator.moderate_sync([Sample(id="warm", text="warm up")])
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    result = moderator.moderate_long_sync(Sample(id="episode", audio=audio))
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall_s": round(wall, 1), "loaded_rss_mb": round(loaded, 1), "peak_rss_mb": round(peak, 1),
                      "windows": result.evidence["windows"]["count"], "action": result.action}))


def cost(checkpoint: str, lengths: list[float], scan_longest: bool) -> dict:
    rows = []
    for minutes in lengths:
        path = WORK / f"benign-{minutes:g}m.flac"
        seconds = benign_episode(path, minutes)
        done = subprocess.run([sys.executable, "-m", "bench.bench_longform", "cost-child", checkpoint, str(path)],
                              cwd=REPO, capture_output=True, text=True, check=True)
        row = json.loads(done.stdout.strip().splitlines()[-1])
        row.update(minutes=minutes, audio_s=round(seconds, 1), real_time_factor=round(row["wall_s"] / seconds, 4),
                   growth_mb=round(row["peak_rss_mb"] - row["loaded_rss_mb"], 1))
        print(json.dumps(row), flush=True)
        rows.append(row)
    result = {"checkpoint": checkpoint, "in_process": rows, "machine": machine()}
    if scan_longest:
        result["scan"] = scan_one(checkpoint, WORK / f"benign-{max(lengths):g}m.flac")
    return save("cost", result)


def scan_one(checkpoint: str, audio: Path) -> dict:
    """The episode through ``tripwire scan`` (one model actor): wall time, goal 10 min for an hour."""
    import yaml

    manifest = WORK / "scan-one.jsonl"
    manifest.write_text(json.dumps({"id": audio.stem, "audio": audio.name}) + "\n")
    config = WORK / "scan-one.yaml"
    config.write_text(yaml.safe_dump({"actors": 1, "cpus_per_actor": 1, "batch_size": 1, "preprocess_batch_size": 1,
                                      "progress_every_s": 30}))
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "entrypoints.cli", "scan", "--checkpoint", checkpoint, "--manifest",
                    str(manifest), "--out", str(WORK / "scan-one"), "--config", str(config), "--restart"],
                   cwd=REPO, check=True)
    return {"audio": audio.name, "wall_s": round(time.perf_counter() - started, 1)}


# -- episodes -------------------------------------------------------------------------------------------------
def speech_policy(checkpoint: str, evaluated_on: str) -> Path:
    """The checkpoint's policy with the speech signal evaluated for the categories text is (``evaluated_on``)."""
    import yaml

    from tripwire.common.config import to_dict
    from tripwire.model.checkpoint import CheckpointManifest

    policy = to_dict(CheckpointManifest.read(checkpoint).policy())
    text = policy["signals"]["text"]
    policy["signals"]["speech"] = {"categories": list(text["categories"]), "evaluated_on": evaluated_on}
    policy["version"] = f"{policy['version']}+speech"
    path = WORK / "policy-speech.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return path


def scan_catalogue(checkpoint: str, manifest: str, out: Path, policy: Path | None = None) -> list:
    import yaml

    from tripwire.moderation.result import ModerationResult
    from tripwire.scan.output import read_results

    config = WORK / "scan-episodes.yaml"
    config.write_text(yaml.safe_dump({"actors": 2, "cpus_per_actor": 0.5, "batch_size": 1, "preprocess_batch_size": 1,
                                      "preprocess_cpus": 0.25, "progress_every_s": 30}))
    command = [sys.executable, "-m", "entrypoints.cli", "scan", "--checkpoint", checkpoint, "--manifest", manifest,
               "--out", str(out), "--config", str(config)]
    subprocess.run(command + (["--policy", str(policy)] if policy else []), cwd=REPO, check=True)
    return [ModerationResult.from_row(row) for row in read_results(str(out))]


def episodes(checkpoint: str, count: int, minutes: float, evaluated_on: str) -> dict:
    from pipelines.golden_sets import register_episodes
    from tripwire.data.episodes import EpisodeRecipe
    from tripwire.data.sample import read_manifest
    from tripwire.evaluation.golden import manifest_uri

    catalogue = str(WORK / "golden" / "catalogue.yaml")
    started = time.perf_counter()
    golden, _ = register_episodes(str(OLID), catalogue, EpisodeRecipe(episodes=count, minutes=minutes), say=print)
    manifest = manifest_uri(golden, catalogue)
    made_s = time.perf_counter() - started
    rows = {s.id: s for s in read_manifest(manifest)}
    figures = {"golden": golden.ref, "golden_sha256": golden.sha256, "episodes": count, "minutes": minutes,
               "made_in_s": round(made_s, 1), "checkpoint": checkpoint}
    policies = {"checkpoint policy": None, "speech evaluated": speech_policy(checkpoint, evaluated_on)}
    for name, policy in policies.items():
        started = time.perf_counter()
        results = scan_catalogue(checkpoint, manifest, WORK / f"scan-{'speech' if policy else 'shipped'}", policy)
        wall = time.perf_counter() - started
        figures[name] = summarise(results, rows) | {"scan_wall_s": round(wall, 1)}
    figures["machine"] = machine()
    return save("episodes", figures)


def summarise(results: list, rows: dict) -> dict:
    violating = [r for r in results if rows[r.id].meta.get("violation")]
    benign = [r for r in results if not rows[r.id].meta.get("violation")]
    found = in_top = 0
    misses = []

    def near(span: dict, truth: dict) -> bool:
        return abs(span["start_s"] - truth["start_s"]) <= LOCALISED_S and abs(span["end_s"] - truth["end_s"]) <= LOCALISED_S

    for result in violating:
        truth = rows[result.id].meta["violation"]
        worst = result.evidence["windows"]["worst"][CATEGORY]
        top = worst[0]
        span = top.get("span") or top
        in_top += any(near(w.get("span") or w, truth) for w in worst)
        if near(span, truth):
            found += 1
        else:
            misses.append({"id": result.id, "truth": [truth["start_s"], truth["end_s"]],
                           "named": [span["start_s"], span["end_s"]], "excerpt": top.get("excerpt", "")})
    hours = sum(rows[r.id].meta["duration_s"] for r in benign) / 3600
    enforced = sum(r.action in ("restrict", "block") for r in benign)
    reviewed = sum(r.action == "review" for r in benign)
    detected = sum(r.action != "allow" for r in violating)
    return {"localised_within_5s": {"value": round(found / max(len(violating), 1), 4),
                                    "ci": wilson(found, len(violating)), "n": len(violating)},
            "localised_in_the_3_worst_windows": {"value": round(in_top / max(len(violating), 1), 4),
                                                 "ci": wilson(in_top, len(violating))},
            "violating_flagged": {"value": round(detected / max(len(violating), 1), 4),
                                  "ci": wilson(detected, len(violating))},
            "benign_hours": round(hours, 3),
            "benign_restricted_or_blocked_per_hour": round(enforced / hours, 3) if hours else None,
            "benign_sent_to_review_per_hour": round(reviewed / hours, 3) if hours else None,
            "benign_actions": {a: sum(r.action == a for r in benign) for a in ("allow", "review", "restrict", "block")},
            "violating_actions": {a: sum(r.action == a for r in violating)
                                  for a in ("allow", "review", "restrict", "block")},
            "misses": misses[:10]}


# -- spoken OLID ----------------------------------------------------------------------------------------------
def two_actor_config(path: Path, batch_size: int, preprocess_batch_size: int) -> Path:
    """``pipelines/configs/evaluate.yaml`` with two model actors on the two cores (the experts run one thread each)
    and the light preprocessing beside them, written to ``path``."""
    import yaml

    config = yaml.safe_load((REPO / "pipelines/configs/evaluate.yaml").read_text())
    config["scan"].update(actors=2, cpus_per_actor=0.5, batch_size=batch_size,
                          preprocess_batch_size=preprocess_batch_size, preprocess_cpus=0.25)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def evaluate_sets(runs: list[tuple[str, str, str]], config: Path, catalogue: str, work: Path) -> dict:
    """Each ``(name, checkpoint, golden ref)`` through ``tripwire evaluate`` on one local Ray of the machine's two
    cores, into ``work/eval-<name>``: name -> (its report, wall seconds)."""
    import ray

    from pipelines.evaluate import make_job, run as evaluate

    reports = {}
    ray.init(num_cpus=2, log_to_driver=False, logging_level="ERROR")
    try:
        for name, checkpoint, golden in runs:
            started = time.perf_counter()
            report = evaluate(make_job(checkpoint, golden, str(work / f"eval-{name}"), config=str(config),
                                       catalogue=catalogue))
            reports[name] = (report, time.perf_counter() - started)
    finally:
        ray.shutdown()
    return reports


def paired_ratio(metric, truth: np.ndarray, mine: np.ndarray, theirs: np.ndarray, replicates: int,
                 seed: int = 0) -> dict:
    """``metric(truth, mine) / metric(truth, theirs)`` on the same items, with a paired bootstrap 95 % interval
    (each resample draws the items once, for both): ``{"value", "ci"}``."""
    rng = np.random.default_rng(seed)
    ratios = []
    for _ in range(replicates):
        pick = rng.integers(0, len(truth), len(truth))
        ratios.append(metric(truth[pick], mine[pick]) / max(metric(truth[pick], theirs[pick]), 1e-9))
    return {"value": round(metric(truth, mine) / metric(truth, theirs), 4),
            "ci": [round(float(np.percentile(ratios, 2.5)), 4), round(float(np.percentile(ratios, 97.5)), 4)]}


def macro_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    scores = []
    for positive in (1, 0):
        tp = np.sum((predicted == positive) & (truth == positive))
        fp = np.sum((predicted == positive) & (truth != positive))
        fn = np.sum((predicted != positive) & (truth == positive))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(scores))


def spoken(checkpoint: str, limit: int | None, replicates: int = 2000) -> dict:
    from pipelines.golden_sets import register_olid, register_spoken_olid
    from tripwire.data.sample import read_manifest
    from tripwire.evaluation.golden import manifest_uri
    from tripwire.model.checkpoint import CheckpointManifest
    from tripwire.scan.output import read_results

    catalogue = str(WORK / "golden" / "catalogue.yaml")
    config_path = two_actor_config(WORK / "evaluate-2-actors.yaml", batch_size=16, preprocess_batch_size=16)
    typed_set, _ = register_olid(str(OLID), catalogue)
    spoken_set, _ = register_spoken_olid(str(OLID), catalogue, limit)
    reports = evaluate_sets([("typed", checkpoint, typed_set.ref), ("spoken", checkpoint, spoken_set.ref)],
                            config_path, catalogue, WORK)
    threshold = CheckpointManifest.read(checkpoint).policy().rule(CATEGORY).restrict
    labels = {s.id: s.labels[CATEGORY] for s in read_manifest(manifest_uri(typed_set, catalogue))}
    typed = {r["id"]: r for r in read_results(reports["typed"][0]["scan"])}
    said = {r["id"].removeprefix("spoken-"): r for r in read_results(reports["spoken"][0]["scan"])}
    ids = sorted(set(typed) & set(said))
    truth = np.asarray([labels[i] for i in ids])
    typed_scores = np.asarray([_score(typed[i]) for i in ids])
    spoken_scores = np.asarray([_score(said[i]) for i in ids])
    by_typed, by_spoken = typed_scores >= threshold, spoken_scores >= threshold
    return save("spoken", {
        "checkpoint": checkpoint, "typed": typed_set.ref, "spoken": spoken_set.ref, "tweets_in_both": len(ids),
        "restrict_threshold": threshold,
        "typed_macro_f1": round(macro_f1(truth, by_typed), 4), "spoken_macro_f1": round(macro_f1(truth, by_spoken), 4),
        "ratio": {**paired_ratio(macro_f1, truth, by_spoken, by_typed, replicates), "replicates": replicates,
                  "goal": ">= 0.9"},
        "typed_eval_macro_f1": reports["typed"][0]["overall"]["categories"][CATEGORY]["metrics"]["class_macro_f1"],
        "spoken_eval_macro_f1": reports["spoken"][0]["overall"]["categories"][CATEGORY]["metrics"]["class_macro_f1"],
        "wall_s": {name: round(wall, 1) for name, (_, wall) in reports.items()}, "machine": machine()})


def _score(row) -> float:
    scores = row["scores"]
    return float(scores[CATEGORY] if isinstance(scores, dict) else json.loads(scores)[CATEGORY])


# -- latency --------------------------------------------------------------------------------------------------
def latency(checkpoint: str, port: int = 8431, requests_per_level: int = 24) -> dict:
    import base64
    import io

    import httpx
    import ray
    import soundfile
    from ray import serve

    from deployments.app import build_app
    from tripwire.data.sample import Sample
    from tripwire.data.spoken import speak
    from tripwire.moderation.moderator import Moderator

    sentences = ["Good morning everyone, and welcome back to the show.", "Today we talk about small gardens.",
                 "If you come to the meeting again, I will hurt you."]
    wave = np.concatenate([np.concatenate([speak(s, "en-us", 165), np.zeros(8000, np.float32)]) for s in sentences])
    wave = np.pad(wave, (0, max(0, 160000 - len(wave))))[:160000]  # 10 s
    clip = io.BytesIO()
    soundfile.write(clip, wave, 16000, format="FLAC")
    body = {"audio": base64.b64encode(clip.getvalue()).decode()}
    local = Moderator.local(checkpoint)
    in_process = []
    for _ in range(5):
        started = time.perf_counter()
        local.moderate_sync([Sample(id="clip", audio=clip.getvalue())])
        in_process.append(1000 * (time.perf_counter() - started))
    ray.init(num_cpus=2, log_to_driver=False, logging_level="ERROR")
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app({"checkpoint": checkpoint}), name="tripwire", route_prefix="/")
        url = f"http://127.0.0.1:{port}/v1/moderate"
        levels = {}
        with httpx.Client(timeout=300) as client:
            client.post(url, json=body).raise_for_status()  # warm
            for concurrency in (1, 8):
                def one(_):
                    started = time.perf_counter()
                    client.post(url, json=body).raise_for_status()
                    return 1000 * (time.perf_counter() - started)

                started = time.perf_counter()
                with ThreadPoolExecutor(concurrency) as pool:
                    times = sorted(pool.map(one, range(requests_per_level)))
                wall = time.perf_counter() - started
                levels[str(concurrency)] = {"p50_ms": round(statistics.median(times), 1),
                                            "p95_ms": round(times[int(0.95 * (len(times) - 1))], 1),
                                            "clips_per_s": round(requests_per_level / wall, 2)}
    finally:
        ray.shutdown()
    return save("latency", {"checkpoint": checkpoint, "clip_s": 10.0, "requests_per_level": requests_per_level,
                            "in_process_p50_ms": round(statistics.median(in_process), 1), "serve": levels,
                            "machine": machine()})


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parts = parser.add_subparsers(dest="part", required=True)
    part = parts.add_parser("cost")
    part.add_argument("--checkpoint", default="runs/demo/model")
    part.add_argument("--lengths", type=float, nargs="+", default=[10, 30, 60])
    part.add_argument("--no-scan", action="store_true", help="skip the scan of the longest episode")
    part = parts.add_parser("cost-child")
    part.add_argument("checkpoint")
    part.add_argument("audio")
    part = parts.add_parser("episodes")
    part.add_argument("--checkpoint", default="runs/olid/model")
    part.add_argument("--episodes", type=int, default=20)
    part.add_argument("--minutes", type=float, default=3.0)
    part.add_argument("--speech-evaluated-on", default="spoken-olid-test@1")
    part = parts.add_parser("spoken")
    part.add_argument("--checkpoint", default="runs/olid/model")
    part.add_argument("--limit", type=int)
    part = parts.add_parser("latency")
    part.add_argument("--checkpoint", default="runs/demo/model")
    args = parser.parse_args(argv)
    if args.part == "cost-child":
        cost_child(args.checkpoint, args.audio)
        return None
    WORK.mkdir(parents=True, exist_ok=True)
    if args.part == "cost":
        return cost(args.checkpoint, args.lengths, not args.no_scan)
    if args.part == "episodes":
        return episodes(args.checkpoint, args.episodes, args.minutes, args.speech_evaluated_on)
    if args.part == "spoken":
        return spoken(args.checkpoint, args.limit)
    return latency(args.checkpoint)


if __name__ == "__main__":
    main()
