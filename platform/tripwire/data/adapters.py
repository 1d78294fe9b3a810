"""Dataset adapters: public formats -> the sample contract, streamed row by row (never loaded whole).

Each adapter maps its source labels onto the taxonomy through a small mapping file
(``resources/mappings/<adapter>.yaml`` by default), either by *value* of one label field
(``OFF -> {harassment: 1}``) or by *column* for multi-label sources (``insult -> harassment``).
A category the mapping does not mention stays unknown for that source, never a false 0.

    tripwire ingest --adapter olid --source ../shared/datasets/olid/olid-training-v1.0.tsv --out data/olid/train.jsonl
"""

from __future__ import annotations

import csv
import json
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import fsspec

from tripwire.common.config import ConfigError, load_yaml
from tripwire.policy import Taxonomy, default_resource
from tripwire.common.registry import Registry
from tripwire.data.sample import Sample, read_manifest

ADAPTERS: Registry = Registry("dataset adapter")


@dataclass(frozen=True)
class LabelMapping:
    """How one source's labels become taxonomy labels.

    Attributes:
        adapter: the adapter this mapping is for.
        taxonomy_version: the taxonomy the targets belong to.
        values: source label value -> {category: 0/1} (single-field sources).
        columns: source binary column -> category (multi-label sources; 1 in any mapped column -> 1).
    """

    adapter: str
    taxonomy_version: str
    values: dict[str, dict[str, int]] = field(default_factory=dict)
    columns: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if bool(self.values) == bool(self.columns):
            raise ConfigError("give exactly one of 'values' or 'columns'")
        for value, labels in self.values.items():
            for category, label in labels.items():
                if label not in (0, 1):
                    raise ConfigError(f"values.{value}.{category}: expected 0 or 1, got {label!r}")

    @classmethod
    def load(cls, adapter: str, uri: str | Path | None = None) -> "LabelMapping":
        mapping = load_yaml(cls, uri or default_resource(f"mappings/{adapter}.yaml"))
        if mapping.adapter != adapter:
            raise ConfigError(f"{uri}: mapping is for adapter {mapping.adapter!r}, not {adapter!r}")
        return mapping

    def check_taxonomy(self, taxonomy: Taxonomy) -> None:
        targets = set(self.columns.values()) | {c for labels in self.values.values() for c in labels}
        unknown = sorted(targets - set(taxonomy.names))
        if unknown:
            raise ConfigError(f"mapping targets {unknown} are not in taxonomy {taxonomy.version}")

    def for_value(self, value: str, row_id: str) -> dict[str, int]:
        try:
            return dict(self.values[value])
        except KeyError:
            raise ValueError(f"{row_id}: label {value!r} has no mapping; known: {sorted(self.values)}") from None

    def for_columns(self, row: dict[str, str]) -> dict[str, int]:
        labels: dict[str, int] = {}
        for column, category in self.columns.items():
            raw = row.get(column)
            if raw in (None, ""):
                continue
            labels[category] = max(labels.get(category, 0), int(float(raw) >= 0.5))
        return labels


class DatasetAdapter:
    """Base: ``samples()`` yields :class:`Sample` objects from ``source`` (any fsspec URI).

    Args:
        source: the dataset file.
        mapping: label mapping; the adapter's bundled default when None.
        labels_file: a separate gold-label file, for sources that ship labels apart (OLID's test set).
    """

    delimiter = ","

    def __init__(self, source: str, mapping: LabelMapping | None = None, labels_file: str | None = None):
        self.source = str(source)
        self.mapping = mapping or LabelMapping.load(self.registry_name)
        self.labels_file = labels_file
        self.base = posixpath.dirname(self.source)

    def rows(self) -> Iterator[dict[str, str]]:
        with fsspec.open(self.source, "r", encoding="utf-8", newline="") as handle:
            yield from csv.DictReader(handle, delimiter=self.delimiter)

    def to_sample(self, row: dict) -> Sample:
        """One source row -> a sample; raises ValueError/KeyError naming the row when it cannot be mapped."""
        raise NotImplementedError

    def samples(self) -> Iterator[Sample]:
        for row in self.rows():
            yield self.to_sample(row)

    def media_uri(self, relative: str) -> str:
        """Media paths in the source are relative to the source file; manifests keep them absolute."""
        if "://" in relative or relative.startswith("/"):
            return relative
        if "://" in self.base:
            return f"{self.base}/{relative}"
        return str((Path(self.base) / relative).resolve())


_MENTION_RUN = re.compile(r"@USER(?:\s+@USER)+")


def collapse_mentions(tweet: str) -> str:
    """Collapses runs of OLID's anonymised ``@USER`` placeholders into one.

    OLID replaces every mention with ``@USER``; a reply thread starts with up to ~30 of them, which carry
    no content and would use up the text encoder's token budget before the words that matter.
    """
    return _MENTION_RUN.sub("@USER", tweet)


@ADAPTERS.register("olid")
class OLIDAdapter(DatasetAdapter):
    """OLID / OffensEval 2019 TSV (``id, tweet, subtask_a, ...``); test sets take ``labels_file``
    (``labels-levela.csv``: ``id,label`` without a header)."""

    delimiter = "\t"

    def rows(self) -> Iterator[dict[str, str]]:
        # Tweets contain quote characters that are not CSV quoting.
        with fsspec.open(self.source, "r", encoding="utf-8", newline="") as handle:
            yield from csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)

    def __init__(self, source: str, mapping: LabelMapping | None = None, labels_file: str | None = None):
        super().__init__(source, mapping, labels_file)
        self.gold: dict[str, str] = {}
        if labels_file:
            with fsspec.open(labels_file, "r", encoding="utf-8") as handle:
                self.gold = {row[0]: row[1] for row in csv.reader(handle) if row}

    def to_sample(self, row: dict) -> Sample:
        row_id = row["id"]
        label = self.gold.get(row_id) if self.labels_file else row.get("subtask_a")
        labels = self.mapping.for_value(label, f"olid:{row_id}") if label not in (None, "", "NULL") else {}
        return Sample(id=f"olid-{row_id}", text=collapse_mentions(row["tweet"]), labels=labels,
                      meta={"language": "en", "source": "olid", "content_type": "tweet"})


@ADAPTERS.register("davidson")
class DavidsonAdapter(DatasetAdapter):
    """Davidson et al. hate/offensive tweets CSV (``count, hate_speech, offensive_language, neither,
    class, tweet``; an unnamed first index column is allowed)."""

    def rows(self) -> Iterator[dict[str, str]]:
        for index, row in enumerate(super().rows()):
            row.setdefault("id", row.get("") or str(index))
            yield row

    def to_sample(self, row: dict) -> Sample:
        return Sample(id=f"davidson-{row['id']}", text=row["tweet"],
                      labels=self.mapping.for_value(row["class"], f"davidson:{row['id']}"),
                      meta={"language": "en", "source": "davidson", "content_type": "tweet"})


@ADAPTERS.register("jigsaw")
class JigsawAdapter(DatasetAdapter):
    """Jigsaw Toxic Comments CSV (``id, comment_text, toxic, severe_toxic, obscene, threat, insult,
    identity_hate``); ``-1`` labels (the unscored part of the test set) are unknown."""

    def to_sample(self, row: dict) -> Sample:
        cleaned = {k: v for k, v in row.items() if v not in ("-1", "")}
        return Sample(id=f"jigsaw-{row['id']}", text=row["comment_text"], labels=self.mapping.for_columns(cleaned),
                      meta={"language": "en", "source": "jigsaw", "content_type": "comment"})


@ADAPTERS.register("hateful_memes")
class HatefulMemesAdapter(DatasetAdapter):
    """Hateful Memes JSONL (``id, img, label, text``); ``img`` is relative to the JSONL's folder."""

    def rows(self) -> Iterator[dict]:
        with fsspec.open(self.source, "r", encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError:
                        yield {"_error": f"line {line_no}: not valid JSON"}

    def to_sample(self, row: dict) -> Sample:
        if "_error" in row:
            raise ValueError(f"hateful_memes: {row['_error']}")
        label = row.get("label")
        labels = self.mapping.for_value(str(label), f"hateful_memes:{row['id']}") if label is not None else {}
        return Sample(id=f"memes-{row['id']}", text=row.get("text"), image=self.media_uri(row["img"]),
                      labels=labels, meta={"language": "en", "source": "hateful_memes", "content_type": "meme"})


@ADAPTERS.register("esc50")
class ESC50Adapter(DatasetAdapter):
    """ESC-50 ``meta/esc50.csv`` (``filename, fold, target, category, ...``); clips under ``../audio/``."""

    def to_sample(self, row: dict) -> Sample:
        labels = dict(self.mapping.values.get(row["category"], self.mapping.values.get("*", {})))
        return Sample(id=f"esc50-{Path(row['filename']).stem}", audio=self.media_uri(f"../audio/{row['filename']}"),
                      labels=labels, meta={"source": "esc50", "content_type": "audio_clip", "fold": row.get("fold")})


@ADAPTERS.register("manifest")
class ManifestAdapter(DatasetAdapter):
    """Tripwire's own manifest (JSONL or Parquet); labels already use taxonomy names."""

    def __init__(self, source: str, mapping: LabelMapping | None = None, labels_file: str | None = None):
        self.source, self.mapping, self.labels_file = str(source), mapping, labels_file
        self.base = posixpath.dirname(self.source)

    def rows(self) -> Iterator[Sample]:
        yield from read_manifest(self.source)

    def to_sample(self, sample: Sample) -> Sample:
        for name in ("image", "audio", "video"):
            ref = getattr(sample, name)
            if isinstance(ref, str) and not ref.startswith("data:"):
                setattr(sample, name, self.media_uri(ref))
        return sample


def ingest(adapter: str, source: str, out: str, mapping: str | None = None, labels_file: str | None = None,
           taxonomy: Taxonomy | None = None, dedupe: bool = True) -> dict:
    """Streams ``source`` through an adapter into a JSONL manifest at ``out``.

    Rows the adapter cannot map are skipped and counted (with the first few reasons), never fatal.
    With ``dedupe``, exact duplicates by content hash (text + media references) are dropped; keep them
    for official test sets, whose published figures count every row.
    """
    import hashlib

    taxonomy = taxonomy or Taxonomy.load()
    cls = ADAPTERS.get(adapter)
    label_mapping = LabelMapping.load(adapter, mapping) if adapter != "manifest" else None
    if label_mapping:
        label_mapping.check_taxonomy(taxonomy)
    instance = cls(source, label_mapping, labels_file)
    written, duplicates, skipped, reasons, seen = 0, 0, 0, [], set()
    Path(out).parent.mkdir(parents=True, exist_ok=True) if "://" not in out else None
    with fsspec.open(out, "w", encoding="utf-8") as handle:
        for row in instance.rows():
            try:
                sample = instance.to_sample(row)
            except (ValueError, KeyError) as exc:
                skipped += 1
                if len(reasons) < 5:
                    reasons.append(str(exc))
                continue
            digest = hashlib.sha256(json.dumps([sample.text, sample.image, sample.audio, sample.video],
                                               default=str).encode()).hexdigest()
            if dedupe and digest in seen:
                duplicates += 1
                continue
            seen.add(digest)
            handle.write(json.dumps(sample.to_row(), sort_keys=True) + "\n")
            written += 1
    return {"adapter": adapter, "source": source, "out": out, "written": written, "duplicates": duplicates,
            "skipped": skipped, "skip_reasons": reasons}
