"""Training ingest benchmark: samples/s that reach the training loop, Ray Data vs. a plain DataLoader.

Side by side in one process on the same machine budget (two decode+preprocess processes each):

* **Ray Data**: the training job's own path (``read_text`` -> ``to_records`` -> ``map_batches(PreprocessBatch)``
  on an actor pool of 2), consumed with ``iter_batches`` as a training worker would.
* **DataLoader**: ``torch.utils.data.DataLoader(num_workers=2)`` over the same manifest, each item through the
  same :class:`~tripwire.data.preprocess.Preprocessor` and collate.

For an image-heavy corpus (256 px PNGs -> 224 px tensors) and an audio-heavy one (4 s WAVs -> log-mel),
one cold epoch each (start-up included, as a training epoch sees it) and the steady rate after the first
batch. Then the end-to-end training rate (loop samples/s, demo model, 1 epoch) with 1 vs. 2 Ray Train
workers. Prints a table and writes ``bench/results/ingest.json``.

    .venv/bin/python -m bench.bench_ingest [--items 600] [--skip-training]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
BATCH = 32
PROCESSES = 2  # the decode budget both loaders get


def make_corpora(root: Path, items: int) -> dict[str, Path]:
    """Image-only and audio-only manifests over one generated corpus (media paths stay relative)."""
    from tripwire.data.synthetic import CorpusSpec, generate_corpus

    manifest = generate_corpus(root, CorpusSpec(num_items=int(items * 4.5), seed=11, image_size=256,
                                                audio_seconds=4.0))
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    out = {}
    for kind in ("image", "audio"):
        picked = [r for r in rows if r.get(kind) and not r.get("video")][:items]
        path = root / f"{kind}-heavy.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in picked))
        out[kind] = path
    return out


def preprocessing():
    from tripwire.model.encoders import minilm_dir
    from tripwire.data.preprocess import AudioPreprocessing, ImagePreprocessing, PreprocessingConfig, TextPreprocessing

    return PreprocessingConfig(text=TextPreprocessing(tokenizer=minilm_dir(), max_length=32),
                               image=ImagePreprocessing(size=224),
                               audio=AudioPreprocessing(sample_rate=16000, clip_seconds=4.0, n_mels=64))


def consume(batches) -> dict[str, float]:
    started = time.perf_counter()
    first_at, rows = None, 0
    for batch in batches:
        rows += len(batch["labels"])
        if first_at is None:
            first_at, first_rows = time.perf_counter(), rows
    end = time.perf_counter()
    return {"rows": rows, "samples_per_s": rows / (end - started),
            "steady_samples_per_s": (rows - first_rows) / max(end - first_at, 1e-9),
            "seconds": round(end - started, 2)}


def ray_data_epoch(manifest: Path, categories: list[str]) -> dict[str, float]:
    from ray.data import ActorPoolStrategy

    from tripwire.data.dataset import LIGHT_TASK_CPUS, read_manifest_dataset
    from tripwire.common.config import to_dict
    from tripwire.training.ingest import PreprocessBatch

    dataset = read_manifest_dataset(str(manifest)).map_batches(
        PreprocessBatch, batch_size=BATCH, batch_format="numpy",
        fn_constructor_kwargs={"preprocessing": to_dict(preprocessing()), "modalities": ["text", "image", "audio"],
                               "categories": categories, "base_uri": str(manifest.parent)},
        num_cpus=(2.0 - LIGHT_TASK_CPUS) / PROCESSES, compute=ActorPoolStrategy(size=PROCESSES))
    return consume(dataset.iter_batches(batch_size=BATCH, batch_format="numpy"))


class ManifestItems(torch.utils.data.Dataset):
    """The DataLoader baseline: one manifest line -> one preprocessed item (same code as the UDF)."""

    def __init__(self, manifest: Path, categories: list[str]):
        from tripwire.data.preprocess import Preprocessor

        self.lines = [line for line in manifest.read_text().splitlines() if line.strip()]
        self.base = str(manifest.parent)
        self.categories = categories
        self.preprocessor = Preprocessor(preprocessing(), ["text", "image", "audio"])

    def __len__(self) -> int:
        return len(self.lines)

    def __getitem__(self, index: int) -> dict:
        from tripwire.data.sample import Sample

        sample = Sample.from_row(json.loads(self.lines[index]))
        item = self.preprocessor.sample(sample, self.base)
        item["labels"] = np.asarray([sample.labels.get(c, -1) for c in self.categories], np.float32)
        return item

    def collate(self, items: list[dict]) -> dict:
        labels = np.stack([item.pop("labels") for item in items])
        return {**self.preprocessor.collate(items), "labels": labels}


def dataloader_epoch(manifest: Path, categories: list[str]) -> dict[str, float]:
    torch.set_num_threads(1)
    items = ManifestItems(manifest, categories)
    loader = torch.utils.data.DataLoader(items, batch_size=BATCH, num_workers=PROCESSES, collate_fn=items.collate)
    return consume(loader)


def training_rate(root: Path, workers: int, ordered: bool = True) -> dict:
    from pipelines.train import run
    from tripwire.common.config import load_yaml
    from tripwire.training.config import TrainConfig

    cfg = load_yaml(TrainConfig, REPO / "pipelines/configs/demo.yaml").resolved(REPO)
    cfg = dataclasses.replace(
        cfg, run_name=f"ingest-{workers}w-{ordered}", storage_path=str(root / "ray"),
        export_dir=str(root / f"model-{workers}-{ordered}"), data=dataclasses.replace(cfg.data, ordered=ordered),
        fit=dataclasses.replace(cfg.fit, num_workers=workers, cpus_per_worker=1.0 / workers, epochs=1))
    summary = run(cfg)
    return {"workers": workers, "ordered": ordered, "train_samples_per_s": summary["train_samples_per_s"],
            "wall_s": summary["wall_seconds"], "val_macro_roc_auc": summary["val_metrics"]["macro"]["roc_auc"]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=600)
    parser.add_argument("--skip-training", action="store_true", help="only the loader comparison")
    parser.add_argument("--ordered-ab", action="store_true",
                        help="only the end-to-end rate, 2 workers, ordered vs unordered ingest")
    args = parser.parse_args(argv)

    import ray
    from ray.data import DataContext

    from tripwire.policy import Taxonomy

    categories = Taxonomy.load().names
    results: dict = {"items": args.items, "batch_size": BATCH, "decode_processes": PROCESSES, "corpora": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        corpora = {} if args.ordered_ab else make_corpora(root / "corpus", args.items)
        ray.init(num_cpus=2, log_to_driver=False)
        DataContext.get_current().enable_progress_bars = False
        try:
            if args.ordered_ab:
                results["ordered_vs_unordered"] = [training_rate(root, 2, ordered) for ordered in (True, False)]
            for kind, manifest in corpora.items():
                loader = dataloader_epoch(manifest, categories)
                data = ray_data_epoch(manifest, categories)
                results["corpora"][f"{kind}-heavy"] = {
                    "ray_data": data, "dataloader": loader,
                    "ratio_ray_data_over_dataloader": round(data["samples_per_s"] / loader["samples_per_s"], 3),
                    "steady_ratio": round(data["steady_samples_per_s"] / loader["steady_samples_per_s"], 3)}
            if not args.skip_training and not args.ordered_ab:
                results["training"] = [training_rate(root, workers) for workers in (1, 2)]
        finally:
            ray.shutdown()

    print(f"\n{'corpus':<14}{'loader':<12}{'samples/s':>11}{'steady':>9}{'seconds':>9}")
    for corpus, row in results["corpora"].items():
        for name in ("ray_data", "dataloader"):
            r = row[name]
            print(f"{corpus:<14}{name:<12}{r['samples_per_s']:>11.1f}{r['steady_samples_per_s']:>9.1f}{r['seconds']:>9.1f}")
        print(f"{corpus:<14}{'ratio':<12}{row['ratio_ray_data_over_dataloader']:>11.3f}{row['steady_ratio']:>9.3f}")
    for row in results.get("training", []) + results.get("ordered_vs_unordered", []):
        print(f"training, {row['workers']} worker(s), ordered={row['ordered']}: {row['train_samples_per_s']:.1f} "
              f"samples/s (wall {row['wall_s']} s)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / ("ingest_ordered_ab.json" if args.ordered_ab else "ingest.json")).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
