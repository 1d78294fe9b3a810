"""Building and registering golden sets: the OLID official test set (typed, or spoken), a training run's held-out
split, or any manifest the user names (``tripwire golden ...``). Registration itself is :mod:`tripwire.evaluation.golden`."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tripwire.model.checkpoint import CheckpointManifest
from tripwire.common.config import ConfigError, to_dict
from tripwire.data.spoken import SpeechRecipe
from tripwire.evaluation.golden import GoldenSet, catalogue_path, register
from tripwire.policy import Taxonomy
from tripwire.data.splits import read_splits

OLID_SOURCE = "OLID v1.0 official test set, sub-task A (OffensEval 2019; Zampieri et al., NAACL 2019)"
OLID_PROVENANCE = ("expert-adjudicated crowd annotation (OLID); OFF -> harassment, NOT -> 0, other categories "
                   "unknown (resources/mappings/olid.yaml)")


def register_olid(olid_dir: str, catalogue: str | None = None) -> tuple[GoldenSet, bool]:
    """Converts OLID's test tweets and gold labels with the project's adapter; registers ``olid-test``."""
    from tripwire.data.adapters import ingest

    folder = Path(olid_dir)
    tweets, labels = folder / "testset-levela.tsv", folder / "labels-levela.csv"
    for path in (tweets, labels):
        if not path.exists():
            raise ConfigError(f"--olid: {path} does not exist (expected the OLID v1.0 release folder)")
    out = Path(catalogue_path(catalogue)).resolve().parent / "olid-test" / "manifest.jsonl"
    ingest("olid", str(tweets), str(out), labels_file=str(labels), dedupe=False)  # the official set counts every row
    licence_text = (folder / "LICENSE").read_text(errors="replace") if (folder / "LICENSE").exists() else ""
    licence = "CC BY 4.0" if licence_text.lstrip().startswith("Attribution 4.0 International") \
        else f"see {folder / 'LICENSE'}"
    return register("olid-test", str(out), Taxonomy.load().names, OLID_SOURCE, licence, OLID_PROVENANCE,
                    description="860 tweets, 240 offensive", catalogue=catalogue)


SPOKEN_OLID_SOURCE = ("OLID v1.0 official test set, sub-task A, read out by espeak-ng (Debian) by tripwire's "
                      "tripwire.data.spoken")


def register_spoken_olid(olid_dir: str, catalogue: str | None = None, limit: int | None = None,
                         recipe: SpeechRecipe | None = None) -> tuple[GoldenSet, bool]:
    """OLID's test tweets spoken (:mod:`tripwire.data.spoken`: voices, rates, pitches and noise drawn with the
    recipe's seed), registered as ``spoken-olid-test`` with the recipe beside the manifest (``recipe.json``) and
    in the set's description. ``limit``: the first N tweets only (a quicker, smaller set)."""
    from tripwire.data.adapters import ingest
    from tripwire.data.sample import read_manifest
    from tripwire.data.spoken import spoken_rows

    recipe = recipe or SpeechRecipe()
    folder = Path(olid_dir)
    tweets, labels = folder / "testset-levela.tsv", folder / "labels-levela.csv"
    for path in (tweets, labels):
        if not path.exists():
            raise ConfigError(f"--olid: {path} does not exist (expected the OLID v1.0 release folder)")
    root = Path(catalogue_path(catalogue)).resolve().parent
    name = "spoken-olid-test" if limit is None else f"spoken-olid-test-{limit}"
    out = root / name
    text_manifest = out / "text.jsonl"
    ingest("olid", str(tweets), str(text_manifest), labels_file=str(labels), dedupe=False)
    samples = list(read_manifest(str(text_manifest)))[:limit]
    rows = spoken_rows(samples, out, recipe)
    text_manifest.unlink()
    manifest = out / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    described = json.dumps(to_dict(recipe), sort_keys=True)
    (out / "recipe.json").write_text(described + "\n")
    return register(name, str(manifest), Taxonomy.load().names, SPOKEN_OLID_SOURCE, "CC BY 4.0 (OLID)",
                    OLID_PROVENANCE, description=f"{len(rows)} OLID test tweets spoken; recipe {described}",
                    catalogue=catalogue)


def register_heldout(checkpoint: str, name: str | None = None, catalogue: str | None = None) -> tuple[GoldenSet, bool]:
    """The checkpoint's validation split (never trained on) as a golden set named ``<run_name>-heldout``.

    The manifest is written beside the training manifest, so its relative media paths stay valid.
    """
    manifest = CheckpointManifest.read(checkpoint)
    training = manifest.training
    source_manifest = ((training.config or {}).get("data") or {}).get("manifest")
    if not source_manifest or not os.path.exists(source_manifest):
        raise ConfigError(f"{checkpoint}: its training manifest {source_manifest!r} is not on this machine")
    splits = read_splits(f"{manifest.uri}/splits.parquet")
    run_name = training.run_name or "model"
    out = Path(source_manifest).parent / f"heldout-{run_name}.jsonl"
    categories = set(manifest.taxonomy.names)
    kept, invalid = 0, 0
    with open(source_manifest, encoding="utf-8") as rows, open(out, "w", encoding="utf-8") as handle:
        for line in rows:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(row, dict) or splits.get(str(row.get("id"))) != "val":
                continue
            labels = row.get("labels")
            if not isinstance(labels, dict) or not set(labels) <= categories:
                invalid += 1  # training quarantined it (invalid_row): it is no golden item either
                continue
            handle.write(line if line.endswith("\n") else line + "\n")
            kept += 1
    if not kept:
        raise ConfigError(f"{checkpoint}: no validation-split item found in {source_manifest}")
    left_out = f"; {invalid} row(s) with labels outside the taxonomy left out" if invalid else ""
    return register(name or f"{run_name}-heldout", str(out), manifest.taxonomy.names,
                    source=f"validation split of training run {run_name!r} ({source_manifest})",
                    licence="as the training corpus", label_provenance="the training corpus's own labels",
                    description=f"{kept} items held out from training (model {manifest.version}){left_out}",
                    catalogue=catalogue)
