"""Pictures: how much of the text model's quality survives being drawn and read back, what OCR and nudity cost, where
text in video is found, and what the nudity signal does to benign photographs.

    .venv/bin/python -m bench.bench_pictures rendered [--checkpoint runs/olid/model] [--engine rapidocr] [--limit N]
    .venv/bin/python -m bench.bench_pictures cost     [--items 40]
    .venv/bin/python -m bench.bench_pictures video    [--videos 12]
    .venv/bin/python -m bench.bench_pictures benign
    .venv/bin/python -m bench.bench_pictures train    [--tweets 1500] [--seed 0] [--epochs 2]

* ``rendered``: OLID's test set typed (``olid-test``) and drawn into pictures (``rendered-olid-test``: cards, memes
  over real photographs, captions; fonts, sizes, colours, rotations, JPEG) through ``tripwire evaluate`` with the
  same checkpoint (a copy naming the OCR engine: the text model is not retrained) and policy: macro-F1 of each
  and their ratio on the tweets in both, with a paired bootstrap interval; and how exactly the words were read.
* ``cost``: per OCR engine, pictures per second over rendered tweets in one process, one thread; the text-presence
  check's cost and how often it passes (on rendered text, and on benign photographs); nudity pictures per second.
* ``video``: short videos of a photograph with an offensive tweet shown for one second at a random time, 4 frames a
  second, through the moderation core (the checkpoint's video sampling): the share whose worst text block is
  read in a frame within one sampled frame's spacing of the time the text was shown (Wilson 95 % interval).
* ``train``: OLID training tweets drawn into pictures (the rendered recipe) train a text model through the training
  job's OCR stage (``data.text_in_pictures``), and the same tweets typed train another (same split, config, seed):
  macro-F1 of each on OLID's typed test set at its own restrict threshold and ROC-AUC, their ratios with paired
  bootstrap intervals, and the OCR stage's rows per second inside the job.
* ``benign``: every bundled picture (scikit-image, scikit-learn, matplotlib: nobody made them for Tripwire)
  through the nudity expert: its scores, and the actions the bundled policy's ``sexual`` thresholds would take on
  them were the nudity signal evaluated (the shipped policy holds it at review).

Needs ``../shared/datasets/olid``; ``--engine tesseract`` needs ``make ocr-tools``. Writes
``bench/results/pictures_<part>.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time

import numpy as np

from bench.bench_longform import (OLID, REPO, RESULTS, evaluate_sets, machine, macro_f1, paired_ratio,
                                  two_actor_config, wilson)

WORK = REPO / "runs" / "bench" / "pictures"
CATEGORY = "harassment"  # OLID's offensive


def save(part: str, result: dict) -> dict:
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"pictures_{part}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def with_ocr(checkpoint: str, engine: str) -> str:
    """The checkpoint, copied once, naming ``engine`` as its OCR expert."""
    import shutil

    from tripwire.model.checkpoint import with_experts
    from tripwire.model.safety_model import ComponentConfig

    out = WORK / f"model-{engine}"
    if out.exists():
        shutil.rmtree(out)
    return str(with_experts(checkpoint, out, {"ocr": ComponentConfig(engine)}))


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9@#]+", " ", text.lower()).split()


def rendered(checkpoint: str, engine: str, limit: int | None, replicates: int = 2000) -> dict:
    import difflib

    from pipelines.golden_sets import register_olid, register_rendered_olid
    from tripwire.data.sample import read_manifest
    from tripwire.evaluation.golden import manifest_uri
    from tripwire.model.checkpoint import CheckpointManifest
    from tripwire.scan.output import read_results

    catalogue = str(WORK / "golden" / "catalogue.yaml")
    config_path = two_actor_config(WORK / "evaluate-2-actors.yaml", batch_size=8, preprocess_batch_size=16)
    reading = with_ocr(checkpoint, engine)
    typed_set, _ = register_olid(str(OLID), catalogue)
    drawn_set, _ = register_rendered_olid(str(OLID), catalogue, limit)
    reports = evaluate_sets([(f"typed-{engine}", checkpoint, typed_set.ref), (f"drawn-{engine}", reading, drawn_set.ref)],
                            config_path, catalogue, WORK)
    reports = {"typed": reports[f"typed-{engine}"], "drawn": reports[f"drawn-{engine}"]}
    threshold = CheckpointManifest.read(checkpoint).policy().rule(CATEGORY).restrict
    labels = {s.id: s.labels[CATEGORY] for s in read_manifest(manifest_uri(typed_set, catalogue))}
    drawn_rows = {s.id.removeprefix("rendered-"): s for s in read_manifest(manifest_uri(drawn_set, catalogue))}
    typed = {r["id"]: r for r in read_results(reports["typed"][0]["scan"])}
    drawn = {r["id"].removeprefix("rendered-"): r for r in read_results(reports["drawn"][0]["scan"])}
    ids = sorted(set(typed) & set(drawn))
    truth = np.asarray([labels[i] for i in ids])
    by_typed = np.asarray([_score(typed[i]) for i in ids]) >= threshold
    by_drawn = np.asarray([_score(drawn[i]) for i in ids]) >= threshold
    # How exactly the words came back (the text drawn against the text read, all blocks in order).
    similarity, exact, by_layout = [], 0, {}
    for i in ids:
        blocks = _evidence(drawn[i]).get("image_text", {}).get("blocks", [])
        # Where a picture has several blocks, the last is all its text read as one (the moderation core adds it).
        read = blocks[-1]["text"] if blocks else ""
        want = drawn_rows[i].meta["rendered_text"]
        ratio = difflib.SequenceMatcher(None, _words(read), _words(want)).ratio()
        similarity.append(ratio)
        exact += _words(read) == _words(want)
        by_layout.setdefault(drawn_rows[i].meta["layout"], []).append(ratio)
    return save(f"rendered_{engine}", {
        "checkpoint": checkpoint, "engine": engine, "typed": typed_set.ref, "drawn": drawn_set.ref,
        "tweets_in_both": len(ids), "restrict_threshold": threshold,
        "typed_macro_f1": round(macro_f1(truth, by_typed), 4), "drawn_macro_f1": round(macro_f1(truth, by_drawn), 4),
        "ratio": {**paired_ratio(macro_f1, truth, by_drawn, by_typed, replicates), "replicates": replicates,
                  "goal": ">= 0.95"},
        "same_decision": round(float(np.mean(by_typed == by_drawn)), 4),
        "words_read": {"mean_similarity": round(float(np.mean(similarity)), 4), "exact": exact,
                       "by_layout": {k: round(float(np.mean(v)), 4) for k, v in sorted(by_layout.items())}},
        "wall_s": {name: round(wall, 1) for name, (_, wall) in reports.items()}, "machine": machine()})


def _score(row) -> float:
    scores = row["scores"]
    return float(scores[CATEGORY] if isinstance(scores, dict) else json.loads(scores)[CATEGORY])


def _evidence(row) -> dict:
    evidence = row["evidence"]
    return evidence if isinstance(evidence, dict) else json.loads(evidence)


def cost(items: int) -> dict:
    import shutil

    from PIL import Image

    from pipelines.golden_sets import olid_test_samples
    from tripwire.data.rendered import RenderRecipe, bundled_photos, printable, render
    from tripwire.experts import NUDITY_EXPERTS, OCR_EXPERTS, has_text

    samples = olid_test_samples(str(OLID), WORK)[:items]
    photos = bundled_photos()
    pictures = [np.asarray(render(printable(s.text), random.Random(f"cost:{s.id}"), RenderRecipe(), photos)[0])
                for s in samples]
    benign = [np.asarray(Image.open(p).convert("RGB")) for p in photos]
    out: dict = {"pictures": len(pictures), "benign_photos": len(benign), "engines": {}}
    for name in OCR_EXPERTS.names():
        if name == "tesseract" and shutil.which("tesseract") is None:
            out["engines"][name] = "skipped: tesseract-ocr is not installed (make ocr-tools)"
            continue
        engine = OCR_EXPERTS.get(name)(check_text=False)
        engine.read(pictures[:1])  # warm-up
        started = time.perf_counter()
        engine.read(pictures)
        wall = time.perf_counter() - started
        out["engines"][name] = {"pictures_per_s": round(len(pictures) / wall, 3), "s_per_picture": round(wall / len(pictures), 3)}
    started = time.perf_counter()
    passed = [has_text(p) for p in pictures]
    check_s = (time.perf_counter() - started) / len(pictures)
    benign_passed = [has_text(p) for p in benign]
    out["text_check"] = {"ms_per_picture": round(1000 * check_s, 2), "passes_rendered": round(float(np.mean(passed)), 4),
                         "passes_benign_photos": round(float(np.mean(benign_passed)), 4)}
    nudity = NUDITY_EXPERTS.get("opennsfw")()
    nudity.detect(benign[:1])
    started = time.perf_counter()
    nudity.detect(benign)
    wall = time.perf_counter() - started
    out["nudity"] = {"pictures_per_s": round(len(benign) / wall, 2)}
    out["machine"] = machine()
    return save("cost", out)


def video(checkpoint: str, videos: int) -> dict:
    from pipelines.golden_sets import olid_test_samples
    from tripwire.data.rendered import bundled_photos, printable, video_with_text
    from tripwire.data.sample import Sample
    from tripwire.moderation.moderator import Moderator

    reading = with_ocr(checkpoint, "rapidocr")
    moderator = Moderator.local(reading)
    offensive = [s for s in olid_test_samples(str(OLID), WORK) if s.labels.get(CATEGORY)]
    photos = bundled_photos()
    rng = random.Random(0)
    seconds, fps = 8.0, 4.0
    rows, hits = [], 0
    for n in range(videos):
        text = printable(offensive[n].text)
        start = rng.choice([k / fps for k in range(int((seconds - 1) * fps))])
        path = video_with_text(WORK / f"video-{n}.mp4", text, rng.choice(photos), seconds, (start, start + 1.0), fps)
        [result] = moderator.moderate_sync([Sample.from_row({"id": f"v{n}", "video": str(path)})])
        frames = moderator.preprocessor.config.video.num_frames
        spacing = seconds / frames
        worst = result.evidence.get("image_text", {}).get("worst", {}).get(CATEGORY)
        found = worst["frame_s"] if worst else None
        hit = found is not None and start - spacing <= found <= start + 1.0 + spacing
        hits += hit
        rows.append({"shown_s": [start, start + 1.0], "worst_frame_s": found, "hit": hit})
    return save("video", {"checkpoint": checkpoint, "videos": videos, "seconds": seconds, "sampled_frames": frames,
                          "within_one_frame": round(hits / videos, 4), "ci": wilson(hits, videos), "rows": rows,
                          "machine": machine()})


def benign() -> dict:
    from PIL import Image

    from tripwire.data.rendered import bundled_pictures
    from tripwire.experts import NUDITY_EXPERTS
    from tripwire.policy import Policy

    rule = Policy.load().rule("sexual")
    expert = NUDITY_EXPERTS.get("opennsfw")()
    photos = bundled_pictures()
    readings = expert.detect([np.asarray(Image.open(p).convert("RGB")) for p in photos])
    actions = [rule.action_for(r.score)[0].label for r in readings]
    severe = sum(a in ("restrict", "block") for a in actions)
    return save("benign", {
        "pictures": len(photos), "restrict_or_block_if_evaluated": severe, "ci": wilson(severe, len(photos)),
        "review_if_evaluated": actions.count("review"), "thresholds": {"review": rule.review, "restrict": rule.restrict,
                                                                      "block": rule.block},
        "scores": {p.name: round(r.score, 4) for p, r in zip(photos, readings)},
        "max_score": round(max(r.score for r in readings), 4), "machine": machine()})


def train_from_pictures(tweets: int, seed: int, epochs: int, replicates: int = 2000) -> dict:
    """``tweets`` of OLID's training tweets drawn into pictures train a text model through the training job's OCR
    stage (``data.text_in_pictures``); the same tweets typed train another, with the same split, config and seed.
    Both are measured on OLID's typed test set (860 tweets neither saw) at their own restrict thresholds."""
    import dataclasses

    from pipelines.golden_sets import register_olid
    from pipelines.train import run as train
    from tripwire.common.config import load_yaml
    from tripwire.data.adapters import ingest
    from tripwire.data.rendered import RenderRecipe, rendered_rows
    from tripwire.data.sample import read_manifest, write_manifest
    from tripwire.evaluation.classification import roc_auc
    from tripwire.evaluation.golden import manifest_uri
    from tripwire.model.checkpoint import CheckpointManifest
    from tripwire.model.safety_model import ComponentConfig
    from tripwire.scan.output import read_results
    from tripwire.training.config import TextInPicturesConfig, TrainConfig

    folder = WORK / "train"
    ingest("olid", str(OLID / "olid-training-v1.0.tsv"), str(folder / "olid-train.jsonl"))
    rng = random.Random(seed)
    chosen = rng.sample(list(read_manifest(str(folder / "olid-train.jsonl"))), tweets)
    # One split for both runs (15 % validation), by tweet.
    split = {s.id: "val" if rng.random() < 0.15 else "train" for s in chosen}
    started = time.perf_counter()
    drawn_rows = rendered_rows(chosen, folder / "drawn", RenderRecipe(seed=seed))
    render_s = time.perf_counter() - started
    for row in drawn_rows:
        row["meta"]["split"] = split[row["id"].removeprefix("rendered-")]
    kept = {row["id"].removeprefix("rendered-") for row in drawn_rows}  # tweets with printable text
    write_manifest([dataclasses.replace(s, meta={**s.meta, "split": split[s.id]}) for s in chosen if s.id in kept],
                   str(folder / "typed.jsonl"))
    (folder / "drawn" / "manifest.jsonl").write_text("".join(json.dumps(row) + "\n" for row in drawn_rows))
    base = load_yaml(TrainConfig, REPO / "pipelines/configs/olid.yaml")
    base = dataclasses.replace(base, storage_path=str(WORK / "ray"),
                               data=dataclasses.replace(base.data, split_by="meta.split"),
                               model=dataclasses.replace(base.model, experts={}),
                               fit=dataclasses.replace(base.fit, epochs=epochs))
    runs = {
        "typed": dataclasses.replace(base, run_name="from-typed", export_dir=str(folder / "model-typed"),
                                     data=dataclasses.replace(base.data, manifest=str(folder / "typed.jsonl"))),
        "drawn": dataclasses.replace(
            base, run_name="from-pictures", export_dir=str(folder / "model-drawn"),
            data=dataclasses.replace(base.data, manifest=str(folder / "drawn" / "manifest.jsonl"),
                                     text_in_pictures=TextInPicturesConfig(rows="all", actors=2, cpus_per_actor=1.0)),
            model=dataclasses.replace(base.model, experts={"ocr": ComponentConfig("rapidocr")})),
    }
    import ray

    summaries = {name: train(cfg.resolved(REPO)) for name, cfg in runs.items()}
    ray.shutdown()  # the evaluations start their own

    catalogue = str(WORK / "golden" / "catalogue.yaml")
    config_path = two_actor_config(WORK / "evaluate-train.yaml", batch_size=32, preprocess_batch_size=64)
    typed_set, _ = register_olid(str(OLID), catalogue)
    reports = evaluate_sets([(f"trained-{name}", summaries[name]["model_dir"], typed_set.ref) for name in runs],
                            config_path, catalogue, WORK)
    labels = {s.id: s.labels[CATEGORY] for s in read_manifest(manifest_uri(typed_set, catalogue))}
    scores = {name: {r["id"]: _score(r) for r in read_results(reports[f"trained-{name}"][0]["scan"])} for name in runs}
    ids = sorted(set(labels) & set(scores["typed"]) & set(scores["drawn"]))
    truth = np.asarray([labels[i] for i in ids])
    thresholds = {name: CheckpointManifest.read(summaries[name]["model_dir"]).policy().rule(CATEGORY).restrict
                  for name in runs}
    decided = {name: np.asarray([scores[name][i] for i in ids]) >= thresholds[name] for name in runs}
    f1 = {name: macro_f1(truth, decided[name]) for name in runs}
    ranked = {name: np.asarray([scores[name][i] for i in ids]) for name in runs}
    auc = {name: roc_auc(truth, ranked[name]) for name in runs}
    read = summaries["drawn"]["read_from_pictures"]
    return save("train", {
        "tweets_drawn": len(drawn_rows), "seed": seed, "epochs": epochs, "test": typed_set.ref, "test_tweets": len(ids),
        "restrict_threshold": {name: round(t, 4) for name, t in thresholds.items()},
        "macro_f1": {name: round(v, 4) for name, v in f1.items()},
        "ratio_drawn_over_typed": {**paired_ratio(macro_f1, truth, decided["drawn"], decided["typed"], replicates),
                                   "replicates": replicates},
        "same_decision": round(float(np.mean(decided["drawn"] == decided["typed"])), 4),
        "roc_auc": {name: round(v, 4) for name, v in auc.items()},
        "roc_auc_ratio_drawn_over_typed": paired_ratio(roc_auc, truth, ranked["drawn"], ranked["typed"], replicates),
        "ocr_stage": {**read, "rows_per_s": round(read["rows"] / max(read["seconds"], 1e-9), 3), "actors": 2},
        "quarantined": {name: summaries[name]["quarantine_reasons"] for name in runs},
        "val_macro_roc_auc": {name: round(summaries[name]["val_metrics"]["macro"]["roc_auc"], 4) for name in runs},
        "train_wall_s": {name: summaries[name]["wall_seconds"] for name in runs},
        "render_s": round(render_s, 1), "machine": machine()})


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parts = parser.add_subparsers(dest="part", required=True)
    part = parts.add_parser("rendered")
    part.add_argument("--checkpoint", default="runs/olid/model")
    part.add_argument("--engine", default="rapidocr")
    part.add_argument("--limit", type=int)
    part = parts.add_parser("cost")
    part.add_argument("--items", type=int, default=40)
    part = parts.add_parser("video")
    part.add_argument("--checkpoint", default="runs/olid/model")
    part.add_argument("--videos", type=int, default=12)
    parts.add_parser("benign")
    part = parts.add_parser("train")
    part.add_argument("--tweets", type=int, default=1500)
    part.add_argument("--seed", type=int, default=0)
    part.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)
    if args.part == "rendered":
        return rendered(args.checkpoint, args.engine, args.limit)
    if args.part == "cost":
        return cost(args.items)
    if args.part == "video":
        return video(args.checkpoint, args.videos)
    if args.part == "train":
        return train_from_pictures(args.tweets, args.seed, args.epochs)
    return benign()


if __name__ == "__main__":
    main()
