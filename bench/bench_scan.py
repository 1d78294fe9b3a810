"""Scan benchmark: ``tripwire scan`` throughput against its limit and a naive loop, and its cost growth.

Side by side in one run on the same machine, per modality mix (text, image, text+image, video):

* **limit**: the pure model forward (``SafetyModel``, no attribution, no policy) on preloaded, preprocessed
  tensors in this process, one thread (as one scan actor), batches of the scan's batch size;
* **naive loop**: the moderation core in this process, one item at a time (decode, preprocess, model,
  attribution, decision);
* **scan**: the Ray Data job (``pipelines.scan.run``) with one model actor on 1 CPU and decode +
  preprocess tasks on the rest, writing Parquet. Its rate is counted from its first result to its last
  (steady state; the end-to-end rate, actor start-up included, is recorded too).

Then the cost growth: wall time and peak memory of whole scans of 1k, 10k and 50k generated text items
(each in a fresh process; a tiny text model, so the pipeline, not MiniLM, is what grows), to show the scan
is linear in time and flat in memory.

    .venv/bin/python -m bench.bench_scan [--items 384] [--mixes text image ...] [--growth 1000 10000 50000] [--skip-growth]

The model is the demo architecture with untrained weights: speed does not depend on the weights.
Writes ``bench/results/scan.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
MIXES = {"text": ["text"], "image": ["image"], "text+image": ["text", "image"], "video": ["video"]}
BATCH = 32


def mix_manifests(directory: Path, items: int, mixes: list[str]) -> dict[str, Path]:
    """One manifest per modality mix in ``mixes``, ``items`` rows each (corpus items repeated with new ids)."""
    from tripwire.data.sample import read_manifest, write_manifest
    from tripwire.data.synthetic import CorpusSpec, generate_corpus

    manifest = generate_corpus(directory / "corpus", CorpusSpec(num_items=1200, seed=21))
    by_mix: dict[str, list] = {name: [] for name in mixes}
    for sample in read_manifest(str(manifest)):
        for name in mixes:
            modalities = MIXES[name]
            if sample.modalities == modalities:
                by_mix[name].append(sample)
    out = {}
    for name, samples in by_mix.items():
        rows = []
        for i in range(items):
            source = samples[i % len(samples)]
            rows.append(type(source)(**{**vars(source), "id": f"{name}-{i:06d}"}))
        out[name] = directory / "corpus" / f"{name.replace('+', '_')}.jsonl"  # beside the media it references
        write_manifest(rows, str(out[name]))
    return out


def limit_rate(checkpoint: str, manifest: Path) -> float:
    """Items/s of the bare model forward over preprocessed batches held in memory (one thread)."""
    import torch

    from tripwire.model.checkpoint import CheckpointManifest, load_model
    from tripwire.data.preprocess import Preprocessor, batch_to_model_inputs
    from tripwire.data.sample import read_manifest

    torch.set_num_threads(1)
    info = CheckpointManifest.read(checkpoint)
    model = load_model(checkpoint).eval()
    preprocessor = Preprocessor(info.preprocessing(), info.modalities)
    items = [preprocessor.sample(s, str(manifest.parent)) for s in read_manifest(str(manifest))]
    batches = [batch_to_model_inputs(preprocessor.collate(items[i:i + BATCH])) for i in range(0, len(items), BATCH)]
    with torch.no_grad():
        model(*batches[0])  # warm-up
        started = time.perf_counter()
        for inputs, present in batches:
            model(inputs, present)
    return len(items) / (time.perf_counter() - started)


def naive_rate(checkpoint: str, manifest: Path, limit: int = 128) -> float:
    """Items/s of the moderation core in this process, one item at a time (what a script would do)."""
    import torch

    from tripwire.moderation.moderator import Moderator
    from tripwire.data.sample import read_manifest

    torch.set_num_threads(1)
    moderator = Moderator.local(checkpoint)
    samples = list(read_manifest(str(manifest)))[:limit]
    moderator.moderate_sync(samples[:1], str(manifest.parent))
    started = time.perf_counter()
    for sample in samples:
        moderator.moderate_sync([sample], str(manifest.parent))
    return len(samples) / (time.perf_counter() - started)


def scan_rate(checkpoint: str, manifest: Path, out: Path, preprocess_batch_size: int | None = None) -> dict:
    """The scan job over ``manifest`` in this process's Ray: steady and end-to-end items/s (the scan config's
    default ``preprocess_batch_size`` unless given)."""
    from pipelines.scan import run
    from tripwire.scan.config import ScanConfig, ScanJob

    preprocess = {"preprocess_batch_size": preprocess_batch_size} if preprocess_batch_size else {}
    started = time.perf_counter()
    report = run(ScanJob(checkpoint=checkpoint, manifest=str(manifest), out=str(out),
                         scan=ScanConfig(batch_size=BATCH, actors=1, cpus_per_actor=1.0, preprocess_cpus=0.5,
                                         progress_every_s=30.0, **preprocess)))
    wall = time.perf_counter() - started
    return {"items": report["scored"], "steady_items_per_s": report["steady_items_per_s"],
            "end_to_end_items_per_s": round(report["scored"] / wall, 2), "wall_s": round(wall, 2)}


def throughput(items: int, directory: Path, mixes: list[str], preprocess_batch_size: int | None = None) -> dict:
    import ray

    from bench.bench_serving import build_checkpoint

    checkpoint = build_checkpoint(directory)
    manifests = mix_manifests(directory, items, mixes)
    limits = {name: limit_rate(checkpoint, path) for name, path in manifests.items()}
    naive = {name: naive_rate(checkpoint, path) for name, path in manifests.items()}
    ray.init(num_cpus=2, log_to_driver=False, logging_level="WARNING")
    try:
        scans = {name: scan_rate(checkpoint, path, directory / f"out-{name.replace('+', '_')}", preprocess_batch_size)
                 for name, path in manifests.items()}
    finally:
        ray.shutdown()
    table = {}
    for name in manifests:
        rate = scans[name]["steady_items_per_s"]
        table[name] = {"limit_items_per_s": round(limits[name], 2), "naive_items_per_s": round(naive[name], 2),
                       "scan": scans[name], "scan_vs_limit": round(rate / limits[name], 3),
                       "scan_vs_naive": round(rate / naive[name], 2)}
    return table


# -- cost growth ----------------------------------------------------------------------------------
def _rss_of_ray_workers_mb() -> float:
    """Resident memory of every Ray worker process on this machine (the scan's tasks and actors)."""
    total = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            cmdline = (status.parent / "cmdline").read_bytes()
            if b"ray::" not in cmdline and b"default_worker.py" not in cmdline:
                continue
            total += next(int(line.split()[1]) for line in status.read_text().splitlines() if line.startswith("VmRSS"))
        except (OSError, StopIteration):
            continue
    return total / 1024


def growth_child(items: int, directory: str) -> None:
    """One scan of ``items`` generated text items in this (fresh) process; prints its figures as JSON."""
    import ray

    from tripwire.model.checkpoint import save_checkpoint
    from tripwire.model import build_model
    from tripwire.model.encoders import minilm_dir
    from tripwire.model.safety_model import ComponentConfig, ModelConfig
    from tripwire.policy import Taxonomy
    from tripwire.data.preprocess import PreprocessingConfig, Preprocessor, TextPreprocessing
    from tripwire.data.sample import Sample, write_manifest
    from tripwire.data.synthetic import make_text

    import numpy as np

    root = Path(directory)
    taxonomy = Taxonomy.load()
    tiny_bert = {"hf_config": {"model_type": "bert", "vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 1,
                               "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 64}}
    config = ModelConfig(encoders={"text": ComponentConfig("hf_text", tiny_bert)},
                         fusion=ComponentConfig("attention", {"d_model": 32, "num_heads": 2}),
                         preprocessing=PreprocessingConfig(text=TextPreprocessing(tokenizer=minilm_dir(), max_length=32)))
    checkpoint = str(save_checkpoint(build_model(config, taxonomy.names).eval(), root / "model", config.preprocessing,
                                     taxonomy, tokenizer=Preprocessor(config.preprocessing, ["text"]).tokenizer,
                                     training={"run_name": "growth"}))
    rng = np.random.default_rng(0)
    manifest = root / "catalogue.jsonl"
    write_manifest((Sample(id=f"t-{i:07d}", text=make_text(rng, None, False)) for i in range(items)), str(manifest))

    import pipelines.scan as scan
    from tripwire.scan.config import ScanConfig, ScanJob

    peak_workers, stop = [0.0], threading.Event()

    def sample_memory():
        while not stop.wait(0.5):
            peak_workers[0] = max(peak_workers[0], _rss_of_ray_workers_mb())

    ray.init(num_cpus=2, log_to_driver=False, logging_level="WARNING")
    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    started = time.perf_counter()
    report = scan.run(ScanJob(checkpoint=checkpoint, manifest=str(manifest), out=str(root / "out"),
                              scan=ScanConfig(batch_size=64, preprocess_batch_size=256, progress_every_s=60.0)))
    wall = time.perf_counter() - started
    stop.set()
    sampler.join()
    ray.shutdown()
    print("GROWTH " + json.dumps({"items": items, "scored": report["scored"], "wall_s": round(wall, 2),
                                  "items_per_s": round(report["scored"] / wall, 2),
                                  "driver_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                                  "ray_workers_peak_rss_mb": round(peak_workers[0], 1)}))


def growth(sizes: list[int]) -> list[dict]:
    rows = []
    for items in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            done = subprocess.run([sys.executable, "-m", "bench.bench_scan", "--growth-child", str(items), tmp],
                                  capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
        line = next((l for l in done.stdout.splitlines() if l.startswith("GROWTH ")), None)
        if line is None:
            raise RuntimeError(f"growth run of {items} failed: {done.stdout[-2000:]} {done.stderr[-2000:]}")
        rows.append(json.loads(line[len("GROWTH "):]))
        print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=384, help="items per modality mix")
    parser.add_argument("--mixes", nargs="+", choices=sorted(MIXES), default=list(MIXES))
    parser.add_argument("--preprocess-batch-size", type=int, help="the scan's (default: its config's default)")
    parser.add_argument("--growth", type=int, nargs="+", default=[1000, 10000, 50000])
    parser.add_argument("--skip-growth", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--growth-child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--out", default="scan.json", help="file name under bench/results/")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.growth_child:
        growth_child(int(args.growth_child[0]), args.growth_child[1])
        return {}
    report = {"machine": "2 CPU cores (CI kind)", "batch_size": BATCH}
    if not args.skip_throughput:
        with tempfile.TemporaryDirectory() as tmp:
            report["throughput"] = throughput(args.items, Path(tmp), args.mixes, args.preprocess_batch_size)
        print(f"\n{'mix':<12}{'limit/s':>10}{'naive/s':>10}{'scan/s':>10}{'vs limit':>10}{'vs naive':>10}")
        for name, row in report["throughput"].items():
            print(f"{name:<12}{row['limit_items_per_s']:>10}{row['naive_items_per_s']:>10}"
                  f"{row['scan']['steady_items_per_s']:>10}{row['scan_vs_limit']:>10}{row['scan_vs_naive']:>10}")
    if not args.skip_growth:
        report["growth"] = growth(args.growth)
    RESULTS.mkdir(exist_ok=True)
    existing = json.loads((RESULTS / args.out).read_text()) if (RESULTS / args.out).exists() else {}
    (RESULTS / args.out).write_text(json.dumps({**existing, **report}, indent=2))
    return report


if __name__ == "__main__":
    main()
