"""Bytes per collated row, and a short training-style loop on text rows, for a text-only model.

    .venv/bin/python -m bench.bench_batch_bytes [--batches 40] [--batch-size 32] [--out bench/results/batch_bytes.json]

Reports, for a text-only model with OLID's preprocessing (``pipelines/configs/olid.yaml``: the bundled
MiniLM tokenizer, its ``max_length`` and normalisers) and for the four-modality demo preprocessing
(``pipelines/configs/demo.yaml``), the bytes one collated row carries and its columns. Then runs
``--batches`` steps of a training-style loop on text rows (OLID tweets from
``../shared/datasets/olid/olid-training-v1.0.tsv`` when present, else generated text): preprocess each
row, collate, ``batch_to_model_inputs``, forward/backward/step of a tiny BERT text model (one 32-wide
layer, so that the data path's share shows), and reports samples/s with the time of each stage. A pickle
round trip of each batch, a stand-in for Ray Data's object-store hop from the preprocessing tasks to the
train workers, is timed apart and reported both ways; ``data_path_samples_per_s`` leaves the model out.

The same file runs against older code for a before/after comparison: put the other tree's ``platform``
first on ``PYTHONPATH`` (the JSON records which ``tripwire`` was imported), e.g.

    cd /tmp/old && PYTHONPATH=/tmp/old/platform:/tmp/old /work/main/.venv/bin/python \\
        /work/main/bench/bench_batch_bytes.py --out /work/main/bench/results/batch_bytes_old1.json
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OLID_TSV = REPO.parent / "shared" / "datasets" / "olid" / "olid-training-v1.0.tsv"

# tests/helpers.py's TINY_TEXT, with positions for OLID's 96 tokens (TINY_TEXT has 64).
TINY_BERT = {"hf_config": {"model_type": "bert", "vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 1,
                           "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 128}}


def load_yaml(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


def olid_text_preprocessing():
    """OLID's preprocessing settings (text only), with the bundled MiniLM tokenizer."""
    from tripwire.model.encoders import minilm_dir
    from tripwire.data.preprocess import PreprocessingConfig, TextPreprocessing

    text = load_yaml(REPO / "pipelines" / "configs" / "olid.yaml")["model"]["preprocessing"]["text"]
    return PreprocessingConfig(text=TextPreprocessing(tokenizer=minilm_dir(), max_length=int(text["max_length"]),
                                                      normalize=tuple(text.get("normalize", ()))))


def demo_preprocessing():
    """The demo's four-modality preprocessing settings."""
    from tripwire.model.encoders import minilm_dir
    from tripwire.data.preprocess import (AudioPreprocessing, ImagePreprocessing, PreprocessingConfig, TextPreprocessing,
                                     VideoPreprocessing)

    cfg = load_yaml(REPO / "pipelines" / "configs" / "demo.yaml")["model"]["preprocessing"]
    return PreprocessingConfig(text=TextPreprocessing(tokenizer=minilm_dir(), **cfg["text"]),
                               image=ImagePreprocessing(**cfg["image"]), audio=AudioPreprocessing(**cfg["audio"]),
                               video=VideoPreprocessing(**cfg["video"]))


def read_texts(limit: int) -> tuple[list, str]:
    """Up to ``limit`` OLID tweets (through the OLID adapter's tab-separated reader), else generated text."""
    from tripwire.data.sample import Sample

    if OLID_TSV.exists():
        from tripwire.data.adapters import OLIDAdapter

        samples = []
        for sample in OLIDAdapter(str(OLID_TSV)).samples():
            samples.append(sample)
            if len(samples) >= limit:
                break
        return samples, str(OLID_TSV)
    rng = np.random.default_rng(0)
    words = "the a you this is not what why go home great people never always stop love hate".split()
    return [Sample(id=f"gen-{i}", text=" ".join(rng.choice(words, int(rng.integers(5, 30)))),
                   labels={"harassment": int(rng.integers(0, 2))}) for i in range(limit)], "generated"


def row_bytes(pre, samples) -> dict:
    batch = pre.collate([pre.sample(s) for s in samples])
    n = len(samples)
    return {"bytes_per_row": sum(v.nbytes for v in batch.values()) / n,
            "columns": {k: {"shape": list(v.shape[1:]), "dtype": str(v.dtype), "bytes_per_row": v.nbytes // n}
                        for k, v in batch.items()}}


def text_model(preprocessing):
    from tripwire.model.safety_model import ComponentConfig, ModelConfig, build_model

    fusion = load_yaml(REPO / "pipelines" / "configs" / "olid.yaml")["model"]["fusion"]
    config = ModelConfig(encoders={"text": ComponentConfig("hf_text", TINY_BERT)},
                         fusion=ComponentConfig(fusion["name"], dict(fusion.get("args", {}))),
                         preprocessing=preprocessing)
    return build_model(config, ["offensive"])


def training_loop(pre, model, samples, batches: int, batch_size: int, warmup: int = 3) -> dict:
    """``warmup`` + ``batches`` steps over ``samples`` (cycled); stage times over the timed steps only."""
    import torch

    from tripwire.data.preprocess import batch_to_model_inputs

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    stages = {"preprocess": 0.0, "collate": 0.0, "model_inputs": 0.0, "forward_backward": 0.0, "transfer": 0.0}
    pickled = 0
    for step in range(warmup + batches):
        start = (step * batch_size) % len(samples)
        chunk = (samples + samples)[start:start + batch_size]
        marks = [time.perf_counter()]
        items = [pre.sample(s) for s in chunk]
        marks.append(time.perf_counter())
        batch = pre.collate(items)
        batch["labels"] = np.asarray([[float(any(v == 1 for v in s.labels.values()))] for s in chunk], np.float32)
        marks.append(time.perf_counter())
        inputs, present = batch_to_model_inputs(batch)
        labels = torch.as_tensor(batch["labels"])
        marks.append(time.perf_counter())
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(inputs, present), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        marks.append(time.perf_counter())
        payload = pickle.dumps(batch, protocol=5)
        pickle.loads(payload)
        marks.append(time.perf_counter())
        if step >= warmup:
            for name, begin, end in zip(stages, marks, marks[1:]):
                stages[name] += end - begin
            pickled += len(payload)
    rows = batches * batch_size
    loop = sum(v for k, v in stages.items() if k != "transfer")
    data_path = loop - stages["forward_backward"] + stages["transfer"]
    return {"batches": batches, "batch_size": batch_size, "samples_per_s": rows / loop,
            "samples_per_s_with_transfer": rows / (loop + stages["transfer"]),
            "data_path_samples_per_s": rows / data_path,
            "stage_ms_per_batch": {k: round(1000 * v / batches, 3) for k, v in stages.items()},
            "pickled_bytes_per_batch": pickled / batches, "final_loss": float(loss.detach())}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)  # olid.yaml's fit.batch_size
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "batch_bytes.json"))
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    import tripwire
    from tripwire.data.preprocess import Preprocessor

    torch.set_num_threads(1)  # olid.yaml's fit.torch_threads
    torch.manual_seed(0)
    samples, source = read_texts(args.texts)
    text_config = olid_text_preprocessing()
    model = text_model(text_config)
    text_pre = Preprocessor(text_config, model.modalities)
    demo_pre = Preprocessor(demo_preprocessing())
    result = {
        "tripwire": tripwire.__file__,
        "texts": {"source": source, "count": len(samples)},
        "text_only": {"max_length": text_config.text.max_length, "normalize": list(text_config.text.normalize),
                      **row_bytes(text_pre, samples[:64])},
        "demo_four_modalities": row_bytes(demo_pre, samples[:64]),
        "loop": training_loop(text_pre, model, samples, args.batches, args.batch_size),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    loop = result["loop"]
    print(f"tripwire: {result['tripwire']}")
    print(f"text-only row: {result['text_only']['bytes_per_row']:.0f} B; demo row: "
          f"{result['demo_four_modalities']['bytes_per_row']:.0f} B")
    print(f"loop: {loop['samples_per_s']:.0f} samples/s ({loop['samples_per_s_with_transfer']:.0f} with the pickle "
          f"hop); ms/batch {loop['stage_ms_per_batch']}; wrote {out}")
    return result


if __name__ == "__main__":
    main()
