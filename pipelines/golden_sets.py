"""Building and registering golden sets: the OLID official test set (typed, spoken, or drawn into pictures), a training run's held-out
split, or any manifest the user names (``tripwire golden ...``). Registration itself is :mod:`tripwire.evaluation.golden`."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tripwire.model.checkpoint import CheckpointManifest
from tripwire.common.config import ConfigError, to_dict
from tripwire.data.episodes import EpisodeRecipe
from tripwire.data.rendered import RenderRecipe
from tripwire.data.spoken import SpeechRecipe
from tripwire.evaluation.golden import GoldenSet, catalogue_path, register
from tripwire.policy import Taxonomy
from tripwire.data.splits import read_splits

OLID_SOURCE = "OLID v1.0 official test set, sub-task A (OffensEval 2019; Zampieri et al., NAACL 2019)"
OLID_PROVENANCE = ("expert-adjudicated crowd annotation (OLID); OFF -> harassment, NOT -> 0, other categories "
                   "unknown (resources/mappings/olid.yaml)")


def olid_test_files(olid_dir: str) -> tuple[Path, Path]:
    """OLID's official test tweets and their gold labels, in the release folder ``olid_dir``."""
    folder = Path(olid_dir)
    tweets, labels = folder / "testset-levela.tsv", folder / "labels-levela.csv"
    for path in (tweets, labels):
        if not path.exists():
            raise ConfigError(f"--olid: {path} does not exist (expected the OLID v1.0 release folder)")
    return tweets, labels


def olid_test_samples(olid_dir: str, folder: Path) -> list:
    """OLID's test tweets as samples with the project's labels (converted by its adapter, through ``folder``)."""
    from tripwire.data.adapters import ingest
    from tripwire.data.sample import read_manifest

    tweets, labels = olid_test_files(olid_dir)
    text_manifest = folder / "text.jsonl"
    ingest("olid", str(tweets), str(text_manifest), labels_file=str(labels), dedupe=False)
    samples = list(read_manifest(str(text_manifest)))
    text_manifest.unlink()
    return samples


def write_made_set(out: Path, rows: list[dict], recipe) -> tuple[Path, str]:
    """A set the project made: its manifest, and the recipe it was made with beside it (``recipe.json``).
    Returns the manifest's path and the recipe as JSON (for the set's description)."""
    manifest = out / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    described = json.dumps(to_dict(recipe), sort_keys=True)
    (out / "recipe.json").write_text(described + "\n")
    return manifest, described


def register_olid(olid_dir: str, catalogue: str | None = None) -> tuple[GoldenSet, bool]:
    """Converts OLID's test tweets and gold labels with the project's adapter; registers ``olid-test``."""
    from tripwire.data.adapters import ingest

    folder = Path(olid_dir)
    tweets, labels = olid_test_files(olid_dir)
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
    from tripwire.data.spoken import spoken_rows

    recipe = recipe or SpeechRecipe()
    root = Path(catalogue_path(catalogue)).resolve().parent
    name = "spoken-olid-test" if limit is None else f"spoken-olid-test-{limit}"
    out = root / name
    samples = olid_test_samples(olid_dir, out)[:limit]
    rows = spoken_rows(samples, out, recipe)
    manifest, described = write_made_set(out, rows, recipe)
    return register(name, str(manifest), Taxonomy.load().names, SPOKEN_OLID_SOURCE, "CC BY 4.0 (OLID)",
                    OLID_PROVENANCE, description=f"{len(rows)} OLID test tweets spoken; recipe {described}",
                    catalogue=catalogue)


RENDERED_OLID_SOURCE = ("OLID v1.0 official test set, sub-task A, drawn into pictures by tripwire "
                        "(tripwire.data.rendered: cards, memes over real photographs, captions; several fonts, sizes, "
                        "colours, rotations and JPEG qualities)")


def register_rendered_olid(olid_dir: str, catalogue: str | None = None, limit: int | None = None,
                           recipe: RenderRecipe | None = None) -> tuple[GoldenSet, bool]:
    """OLID's test tweets drawn into pictures (:mod:`tripwire.data.rendered`, every draw made with the recipe's
    seed), registered as ``rendered-olid-test`` with the recipe beside the manifest. ``limit``: the first N only."""
    from tripwire.data.rendered import PHOTOS_SOURCE, rendered_rows

    recipe = recipe or RenderRecipe()
    name = "rendered-olid-test" if limit is None else f"rendered-olid-test-{limit}"
    out = Path(catalogue_path(catalogue)).resolve().parent / name
    samples = olid_test_samples(olid_dir, out)[:limit]
    rows = rendered_rows(samples, out, recipe)
    manifest, described = write_made_set(out, rows, recipe)
    return register(name, str(manifest), Taxonomy.load().names, f"{RENDERED_OLID_SOURCE}; backgrounds: {PHOTOS_SOURCE}",
                    "CC BY 4.0 (OLID); photographs under their packages' licences", OLID_PROVENANCE,
                    description=f"{len(rows)} OLID test tweets drawn into pictures; recipe {described}",
                    catalogue=catalogue)


EPISODES_SOURCE = ("OLID v1.0 official test set, sub-task A: not-offensive tweets read out one after another by "
                   "espeak-ng (Debian), some episodes with one offensive tweet at a recorded time "
                   "(tripwire.data.episodes)")


def register_episodes(olid_dir: str, catalogue: str | None = None, recipe: EpisodeRecipe | None = None,
                      say=None) -> tuple[GoldenSet, bool]:
    """Spoken episodes made of OLID's test tweets (:mod:`tripwire.data.episodes`), registered as
    ``olid-episodes-<minutes>m`` with the recipe beside the manifest; each violating row's ``meta.violation`` says
    where the offensive sentence is."""
    from tripwire.data.episodes import episode_rows

    recipe = recipe or EpisodeRecipe()
    name = f"olid-episodes-{recipe.minutes:g}m"
    out = Path(catalogue_path(catalogue)).resolve().parent / name
    samples = olid_test_samples(olid_dir, out)
    progress = (lambda done, total: say(f"[golden] {done}/{total} episodes spoken")) if say else None
    rows = episode_rows(samples, out, recipe, progress)
    manifest, described = write_made_set(out, rows, recipe)
    violating = sum(r["labels"][recipe.category] for r in rows)
    return register(name, str(manifest), Taxonomy.load().names, EPISODES_SOURCE, "CC BY 4.0 (OLID)",
                    OLID_PROVENANCE, description=f"{len(rows)} spoken episodes of {recipe.minutes:g} min, {violating} "
                                                 f"with an offensive tweet at a recorded time; recipe {described}",
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
