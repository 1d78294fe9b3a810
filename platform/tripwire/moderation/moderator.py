"""The moderation core: samples -> complete moderation results, over a backend.

This is the one place a result is assembled: calibrated scores per category, the policy decision with
its reasons, the modality that drove each category, evidence (top video frames, the loudest audio
window), and the model and policy versions. The Serve ingress, the in-process path, ``tripwire scan``,
the demo and the benchmarks all call :class:`Moderator`; they differ only in the backend that runs the
model's parts:

* :class:`LocalBackend`: the model's own modules in this process (optionally routed exactly as serving
  splits them, which the encoder contract tests use);
* :class:`ServeBackend`: Ray Serve deployment handles, one per encoder plus the fusion head.

Both compute with the kernels in :mod:`tripwire.moderation.scoring`, so their numbers agree to float rounding.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np
import torch

from tripwire.data.sample import MODALITIES
from tripwire.model.calibration import PlattCalibration
from tripwire.model.checkpoint import CheckpointManifest, load_model
from tripwire.policy import Policy
from tripwire.data.longform import Window, audio_windows
from tripwire.data.media import MediaError
from tripwire.data.preprocess import Preprocessor
from tripwire.data.sample import Sample
from tripwire.moderation.result import ModerationResult
from tripwire.moderation.scored import SIDE_SIGNALS, ReadText, Scored, SeenPicture
from tripwire.moderation.windowed import WindowFold
from tripwire.experts import (EXPERT_KINDS, ImageText, Transcript, load_expert, picture_kinds,
                              reading_from_json, run_expert, whole_text)
from tripwire.experts.speech import SAMPLE_RATE
from tripwire.moderation.scoring import encode_batch, explain, fuse_batch, head_batch, top_time_window

TOP_FRAMES = 3  # video evidence: the frames with the most attention weight
MAX_SPEECH_SEGMENTS = 50  # speech evidence: the first segments of a transcript, with their words
MAX_TEXT_BLOCKS = 50  # text-in-picture evidence: the blocks that scored highest
EVALUATED_ATOL = 1e-5  # a decision's score differs from the item's: it was the evaluated signals' own
SIGNAL_LABELS = {"image_text": "text in image", "nudity": "nudity detector"}  # how a person reads a signal's name


def speech_evidence(transcript: Transcript, segment_scores: Sequence[np.ndarray] | None,
                    categories: Sequence[str]) -> dict[str, Any]:
    """What was heard, where: the transcript's segments (and words) with their times and each segment's highest
    category, the worst segment per category, the language.

    At most ``MAX_SPEECH_SEGMENTS`` segments are listed (``segments_total`` says how many there were): for long
    media, those that scored highest, in time order; their text is ``text``."""
    data = transcript.to_json()
    segments = data["segments"]
    data["segments_total"] = len(segments)
    if segment_scores:
        scores = np.stack(segment_scores)  # (segments, C)
        for segment, row in zip(segments, scores):
            j = int(np.argmax(row))
            segment["top"] = {"category": categories[j], "score": round(float(row[j]), 6)}
        data["worst"] = {c: {**{k: segments[n][k] for k in ("start_s", "end_s", "text")},
                             "score": round(float(scores[n, j]), 6)}
                         for j, c in enumerate(categories) for n in [int(np.argmax(scores[:, j]))]}
        if len(segments) > MAX_SPEECH_SEGMENTS:
            keep = sorted(np.argsort(-scores.max(axis=1), kind="stable")[:MAX_SPEECH_SEGMENTS])
            segments = [segments[n] for n in keep]
    data["segments"] = segments[:MAX_SPEECH_SEGMENTS]
    data["text"] = " ".join(s["text"] for s in data["segments"] if s["text"])
    return data


def text_evidence(read: Sequence[ReadText], categories: Sequence[str]) -> dict[str, Any]:
    """What was read in the item's pictures, where: each block's text, box (pixels of the picture it was read in)
    and, for a video frame, its time, with the block's highest category; and the worst block per category.
    At most ``MAX_TEXT_BLOCKS`` blocks are listed, those that scored highest (``blocks_total`` says how many)."""
    def where(block: ReadText) -> dict[str, Any]:
        return {"text": block.text, "box": list(block.box), "size": list(block.size),
                **({"frame_s": block.frame_s} if block.frame_s is not None else {})}

    # Rounded: a text read in several frames scores the same within float noise, and the first must win everywhere.
    scores = np.round(np.stack([np.asarray(b.scores) for b in read]), 5)  # (blocks, C)
    keep = sorted(np.argsort(-scores.max(axis=1), kind="stable")[:MAX_TEXT_BLOCKS])
    blocks = [{**where(read[n]), "top": {"category": categories[int(np.argmax(scores[n]))],
                                         "score": round(float(scores[n].max()), 6)}} for n in keep]
    worst = {c: {**where(read[n]), "score": round(float(scores[n, j]), 6)}
             for j, c in enumerate(categories) for n in [int(np.argmax(scores[:, j]))]}
    # A picture with several blocks also has them all as one (the last): its text is said once.
    texts = [b["text"] for b in blocks]
    said = [t for n, t in enumerate(texts) if not any(t in other for m, other in enumerate(texts) if m != n and other != t)]
    return {"blocks": blocks, "blocks_total": len(read), "worst": worst, "text": " ".join(dict.fromkeys(said))}


def nudity_evidence(seen: Sequence[SeenPicture]) -> dict[str, Any]:
    """The nudity expert's probability per picture (and frame time), with the regions that scored highest: a
    reviewer's app shows them blurred."""
    pictures = [{**({"frame_s": p.frame_s} if p.frame_s is not None else {}), **p.reading.to_json()} for p in seen]
    return {"score": max(p["score"] for p in pictures), "pictures": pictures}


def side_attribution(categories: Sequence[str], attribution: dict[str, dict], fused: np.ndarray,
                     side: Mapping[str, np.ndarray]) -> dict[str, dict]:
    """Adds the side signals (speech, text in pictures, nudity) to each category's contributions: how far each
    one's score rose above the fused inputs'. The one that rose highest drives the category, if any did."""
    out = {}
    for j, category in enumerate(categories):
        lifts = {signal: round(max(0.0, float(scores[j] - fused[j])), 6) for signal, scores in side.items()}
        top = max(lifts, key=lambda signal: lifts[signal], default=None)
        driven = top if top is not None and lifts[top] > 0 else attribution[category]["driven_by"]
        out[category] = {"driven_by": driven, "contributions": {**attribution[category]["contributions"], **lifts}}
    return out


class Backend(Protocol):
    """Runs the model's parts over a batch of requests' preprocessed inputs."""

    async def encode(self, modality: str, items: list[Any]) -> list[dict[str, np.ndarray]]:
        """One modality's encoder: per request ``{"embedding": (D,), **evidence}``."""

    async def fuse(self, embeddings: list[dict[str, np.ndarray]]) -> list[dict[str, Any]]:
        """The fusion head with calibration: per request ``{"scores": (C,), "attribution": {m: (C,)}}``."""

    async def run_expert(self, kind: str, inputs: list[Any]) -> list[Any]:
        """The checkpoint's expert of ``kind`` over a batch of inputs (16 kHz waveforms for speech, RGB pictures for
        OCR and nudity): one reading per input (only called for experts the checkpoint names)."""


class LocalBackend:
    """The model's modules in this process.

    Args:
        model: a loaded :class:`tripwire.model.SafetyModel` (eval mode).
        calibration: the checkpoint's score calibration.
        device: where the modules run.
        follow_serving_split: run split encoders as serving does (rows through the upstream encoder,
            then the encoder's own head) instead of whole; the results must not change.
    """

    def __init__(self, model: torch.nn.Module, calibration: PlattCalibration, device: torch.device | str = "cpu",
                 follow_serving_split: bool = False, experts: Mapping[str, Any] | None = None):
        self.model = model
        self.calibration = calibration
        self.device = device
        self.follow_serving_split = follow_serving_split
        self.experts = dict(experts or {})  # kind -> a loaded engine

    async def encode(self, modality: str, items: list[Any]) -> list[dict[str, np.ndarray]]:
        encoder = self.model.encoders[modality]
        upstream = encoder.serving_upstream
        if self.follow_serving_split and upstream is not None:
            rows = encode_batch(self.model.encoders[upstream], upstream, items, self.device, rows=True)
            return head_batch(encoder, rows, self.device)
        return encode_batch(encoder, modality, items, self.device)

    async def fuse(self, embeddings: list[dict[str, np.ndarray]]) -> list[dict[str, Any]]:
        return fuse_batch(self.model.fusion, embeddings, self.calibration)

    async def run_expert(self, kind: str, inputs: list[Any]) -> list[Any]:
        return await asyncio.to_thread(run_expert, kind, self.experts[kind], inputs)


class ServeBackend:
    """Ray Serve deployment handles: ``encoders`` (modality -> handle), the ``fusion`` head's, and ``experts``
    (kind -> handle; their readings cross as JSON).

    Each call carries a whole batch of requests' inputs (one Serve hop per part, not per request), in chunks of
    at most ``max_batch_size`` (the parts' own batch bound: the fusion head also scores the evaluated signals
    alone and the transcripts, so one batch of requests can ask it for more than that).
    """

    def __init__(self, encoders: Mapping[str, Any], fusion: Any, experts: Mapping[str, Any] | None = None,
                 max_batch_size: int = 16):
        self.encoders = dict(encoders)
        self.fusion = fusion
        self.experts = dict(experts or {})
        self.max_batch_size = max_batch_size

    async def _chunked(self, handle: Any, items: list[Any]) -> list[Any]:
        size = self.max_batch_size
        parts = await asyncio.gather(*(handle.remote(items[i:i + size]) for i in range(0, len(items), size)))
        return [output for part in parts for output in part]

    async def encode(self, modality: str, items: list[Any]) -> list[dict[str, np.ndarray]]:
        return await self._chunked(self.encoders[modality], items)

    async def fuse(self, embeddings: list[dict[str, np.ndarray]]) -> list[dict[str, Any]]:
        return await self._chunked(self.fusion, embeddings)

    async def run_expert(self, kind: str, inputs: list[Any]) -> list[Any]:
        return [reading_from_json(kind, r) for r in await self._chunked(self.experts[kind], inputs)]


@dataclass(frozen=True)
class StageTimes:
    """``time.perf_counter()`` marks of one request, for its ``latency_ms``."""

    started: float
    prepared: float
    scored: float


class Moderator:
    """Turns samples into complete moderation results.

    Args:
        manifest: the checkpoint's manifest (categories, modalities, preprocessing, version).
        backend: what runs the model's parts (:class:`LocalBackend` or :class:`ServeBackend`).
        policy: the enforcement policy (default: the checkpoint's, :meth:`CheckpointManifest.policy`);
            :meth:`set_policy` swaps it live.
    """

    def __init__(self, manifest: CheckpointManifest, backend: Backend, policy: Policy | None = None):
        self.manifest = manifest
        self.backend = backend
        self.categories = manifest.categories
        self.modalities = manifest.modalities
        self.model_version = manifest.version
        preprocessing = manifest.preprocessing()
        self.speech = manifest.experts.get("speech")
        self.picture_kinds = picture_kinds(manifest.experts)
        self.preprocessor = Preprocessor(preprocessing, self.modalities, SAMPLE_RATE if self.speech else None,
                                         bool(self.picture_kinds))
        # The categories the nudity signal speaks to: its kind's, and their subcategories.
        spoken_for = EXPERT_KINDS["nudity"].categories
        self.nudity_categories = [j for j, c in enumerate(self.categories)
                                  if c in spoken_for or c.split("/")[0] in spoken_for]
        self.audio = preprocessing.audio  # maps audio evidence back to seconds
        self.policy = None
        self.set_policy(policy or manifest.policy())

    @classmethod
    def local(cls, checkpoint: str, policy: Policy | None = None, device: torch.device | str = "cpu",
              follow_serving_split: bool = False) -> "Moderator":
        """The whole model in this process (the reference that every other path must match)."""
        manifest = CheckpointManifest.read(checkpoint)
        model = load_model(checkpoint).to(device)
        experts = {kind: load_expert(kind, spec) for kind, spec in manifest.experts.items()}
        return cls(manifest, LocalBackend(model, manifest.calibration, device, follow_serving_split, experts), policy)

    def set_policy(self, policy: Policy) -> None:
        """Applies ``policy`` from the next decision on (it must target the model's taxonomy)."""
        policy.check_taxonomy(self.manifest.taxonomy)
        self.policy = policy

    # -- stages -----------------------------------------------------------------------------------
    def prepare(self, sample: Sample, base_uri: str | None = None) -> dict[str, Any]:
        """Fetches, decodes and preprocesses one sample (thread-safe); raises MediaError naming the field."""
        return self.preprocessor.sample(sample, base_uri)

    async def score(self, prepared: Sequence[Mapping[str, Any]], policy: Policy | None = None) -> list[Scored]:
        """The model over a batch of prepared items: each encoder that some item needs, concurrently, on
        the items that have its modality; then the fusion head over every item (decided later by ``policy``,
        default: the current one)."""
        started = time.perf_counter()
        policy = policy or self.policy
        calls, members = [], []
        for modality in MODALITIES:
            rows = [i for i, item in enumerate(prepared) if modality in item]
            if rows:
                calls.append(self.backend.encode(modality, [prepared[i][modality] for i in rows]))
                members.append((modality, rows))
        named: dict[str, int] = {}  # expert kind -> its call's place in ``calls``
        spoken = [i for i, item in enumerate(prepared) if "speech" in item] if self.speech else []
        if spoken:  # beside the encoders: the speech expert takes longest
            named["speech"] = len(calls)
            calls.append(self.backend.run_expert("speech", [prepared[i]["speech"] for i in spoken]))
        # Every picture (an image, or a sampled video frame at its time) of every item, for the picture experts.
        pictures = [(i, when, picture) for i, item in enumerate(prepared)
                    for picture, when in zip(item.get("pictures", ()), item.get("picture_times", ()))]
        pictured = {i for i, *_ in pictures}  # the items with at least one picture
        for kind in self.picture_kinds if pictures else ():
            named[kind] = len(calls)
            calls.append(self.backend.run_expert(kind, [picture for *_, picture in pictures]))
        outputs = await asyncio.gather(*calls)
        encoded: list[dict[str, dict[str, np.ndarray]]] = [{} for _ in prepared]
        for (modality, rows), results in zip(members, outputs):
            for i, output in zip(rows, results):
                encoded[i][modality] = output
        transcripts: list[Transcript | None] = [None] * len(prepared)
        for i, transcript in zip(spoken, outputs[named["speech"]] if spoken else ()):
            transcripts[i] = transcript.by_sentence()  # scored, and evidenced, a sentence at a time
        # What was said and what was read go through the same text encoder as typed text, a sentence (a block of
        # lines) at a time: a whole transcript would be cut at the text model's max_length, and one sentence in a
        # long stretch of talk must not be diluted by the rest.
        said = [i for i, t in enumerate(transcripts) if t is not None and t.text]
        texts = [(i, segment.text.strip()) for i in said for segment in transcripts[i].segments]
        n_said = len(texts)
        blocks = self.text_blocks(pictures, outputs[named["ocr"]]) if "ocr" in named else []
        texts += [(i, block[0]) for i, block in blocks]
        text_out = []
        if texts:
            tokens = self.preprocessor.text([text for _, text in texts])
            text_out = await self.backend.encode("text", [{k: v[n] for k, v in tokens.items()}
                                                          for n in range(len(texts))])
        encoded_at = time.perf_counter()
        requests = [{m: out["embedding"] for m, out in item.items()} for item in encoded]
        read_by = {i for i, _ in blocks}
        # The evaluated signals alone, where an item also has others, and the texts found alone: fused in the same
        # call (one hop).
        subsets = [self.evaluated_subsets(frozenset(item) | ({"speech"} if i in said else set())
                                          | ({"image_text"} if i in read_by else set())
                                          | ({"nudity"} if "nudity" in named and i in pictured
                                             else set()), policy)
                   for i, item in enumerate(requests)]
        extra = [(i, subset) for i, wanted in enumerate(subsets) for subset in wanted]
        # An item only heard or seen by experts (a model without the encoder) has nothing for the fusion head.
        whole = [i for i, request in enumerate(requests) if request]
        to_fuse = ([requests[i] for i in whole] + [{m: requests[i][m] for m in subset} for i, subset in extra]
                   + [{"text": out["embedding"]} for out in text_out])
        fused = await self.backend.fuse(to_fuse) if to_fuse else []
        nothing = {"scores": np.zeros(len(self.categories), np.float32), "attribution": {}}
        items: list[dict[str, Any]] = [nothing] * len(requests)
        for i, output in zip(whole, fused):
            items[i] = output
        by_item: list[dict[frozenset[str], np.ndarray]] = [{} for _ in requests]
        for (i, subset), output in zip(extra, fused[len(whole):len(whole) + len(extra)]):
            by_item[i][subset] = output["scores"]
        text_scores = [np.asarray(output["scores"]) for output in fused[len(whole) + len(extra):]]
        segment_scores: list[list[np.ndarray] | None] = [None] * len(prepared)
        for (i, _), scores in zip(texts[:n_said], text_scores[:n_said]):
            segment_scores[i] = (segment_scores[i] or []) + [scores]
        speech_scores = [np.max(np.stack(s), axis=0) if s else None for s in segment_scores]
        read: list[list[ReadText] | None] = [[] if "ocr" in named and i in pictured else None
                                             for i in range(len(prepared))]
        for (i, (text, box, when, size)), scores in zip(blocks, text_scores[n_said:]):
            read[i].append(ReadText(text, box, when, scores, size))
        seen: list[list[SeenPicture] | None] = [None] * len(prepared)
        if "nudity" in named:
            for (i, when, _), reading in zip(pictures, outputs[named["nudity"]]):
                seen[i] = (seen[i] or []) + [SeenPicture(when, reading)]
        encoders_ms, fusion_ms = 1000 * (encoded_at - started), 1000 * (time.perf_counter() - encoded_at)
        return [Scored(enc, f["scores"], f["attribution"], encoders_ms, fusion_ms, f.get("embedding"), subset, t, s,
                       per_segment, policy, read_texts=r, pictures_seen=v, expert_scores=self.picture_scores(r, v))
                for enc, f, subset, t, s, per_segment, r, v in zip(encoded, items, by_item, transcripts, speech_scores,
                                                                   segment_scores, read, seen)]

    @staticmethod
    def text_blocks(pictures: Sequence[tuple[int, float | None, Any]], readings: Sequence[ImageText]
                    ) -> list[tuple[int, tuple[str, tuple[int, int, int, int], float | None, tuple[int, int]]]]:
        """The texts to score from what OCR read: each picture's blocks, and where a picture has several (a meme's
        top and bottom lines), also all its text as one, read in order and boxed by their union."""
        out = []
        for (i, when, _), reading in zip(pictures, readings):
            found = reading.blocks()
            size = (reading.width, reading.height)
            out += [(i, (block.text, block.box, when, size)) for block in found]
            if len(found) > 1:
                boxes = [block.box for block in found]
                union = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
                         max(b[3] for b in boxes))
                out.append((i, (whole_text(found), union, when, size)))
        return out

    def picture_scores(self, read: list[ReadText] | None, seen: list[SeenPicture] | None) -> dict[str, np.ndarray]:
        """The picture experts' (C,) scores for one item: the text read (its worst block's per category) and the
        nudity probability (its highest picture's, for the categories it speaks to; 0 for the others)."""
        out = {}
        if read:
            out["image_text"] = np.max(np.stack([block.scores for block in read]), axis=0)
        if seen:
            nudity = np.zeros(len(self.categories), np.float32)
            nudity[self.nudity_categories] = max(p.reading.score for p in seen)
            out["nudity"] = nudity
        return out

    def evaluated_subsets(self, signals: frozenset[str], policy: Policy) -> set[frozenset[str]]:
        """The non-empty sets of encoded modalities the fusion head must score alone: for each category, the
        signals evaluated for it among ``signals`` (less the side signals, scored apart), where those are fewer
        than all."""
        side = frozenset(SIDE_SIGNALS)
        encoded = signals - side
        wanted = set()
        for category in self.categories:
            trusted = signals & policy.trusted(category)
            if trusted != signals:
                wanted.add(trusted - side)
        return wanted - {encoded, frozenset()}

    @staticmethod
    def signals(scored: Scored) -> frozenset[str]:
        """The signals an item's scores rest on: its encoded modalities, and the side signals that spoke (speech
        when a transcript was scored, text in pictures when some was read, nudity when pictures were seen)."""
        return frozenset(scored.encoded) | frozenset(scored.side_scores())

    @staticmethod
    def combined_scores(scored: Scored) -> np.ndarray:
        """The item's scores: per category the highest of the fused inputs and the side signals."""
        side = list(scored.side_scores().values())
        return np.max(np.stack([scored.scores, *side]), axis=0) if side else scored.scores

    def trusted_scores(self, scored: Scored, policy: Policy) -> dict[str, float | None]:
        """Per category whose score rests partly on signals not evaluated for it: the evaluated signals' score
        (None when the item has none of them)."""
        signals = self.signals(scored)
        encoded = frozenset(scored.encoded)
        side = scored.side_scores()
        out = {}
        for j, category in enumerate(self.categories):
            trusted = signals & policy.trusted(category)
            if trusted == signals:
                continue
            parts = []
            fused = trusted - frozenset(SIDE_SIGNALS)
            if fused:
                parts.append(float((scored.scores if fused == encoded else scored.subset_scores[fused])[j]))
            parts += [float(side[signal][j]) for signal in trusted & frozenset(side)]
            out[category] = max(parts) if parts else None
        return out

    def result(self, item_id: str, prepared: Mapping[str, Any], scored: Scored, market: str | None = None,
               times: StageTimes | None = None, with_embedding: bool = False) -> ModerationResult:
        """The complete result for one item (the one place a result is assembled).

        ``with_embedding`` keeps the fused embedding: scans keep it for active learning; answers leave it out."""
        combined = self.combined_scores(scored)
        scores = {c: float(s) for c, s in zip(self.categories, combined)}
        latency = None
        if times is not None:
            done = time.perf_counter()
            model_ms = scored.encoders_ms + scored.fusion_ms
            # "batching" is the wait for, and the return from, the request's batch.
            latency = {
                "preprocess": round(1000 * (times.prepared - times.started), 2),
                "encoders": round(scored.encoders_ms, 2),
                "fusion_policy": round(scored.fusion_ms + 1000 * (done - times.scored), 2),
                "batching": round(max(0.0, 1000 * (times.scored - times.prepared) - model_ms), 2),
                "total": round(1000 * (done - times.started), 2)}
        embedding = [float(v) for v in scored.embedding] if with_embedding and scored.embedding is not None else None
        policy = scored.policy or self.policy
        trusted = self.trusted_scores(scored, policy)
        decision = policy.decide(scores, market, trusted)
        evidence = self.evidence(prepared, scored.encoded)
        if scored.transcript is not None:
            evidence["speech"] = speech_evidence(scored.transcript, scored.segment_scores, self.categories)
        if scored.read_texts:
            evidence["image_text"] = text_evidence(scored.read_texts, self.categories)
        if scored.pictures_seen:
            evidence["nudity"] = nudity_evidence(scored.pictures_seen)
        if scored.windows is not None:
            evidence["windows"] = scored.windows
        limited = self.unevaluated(scores, trusted, decision, market, self.signals(scored), policy,
                                   self.silent_signals())
        if limited:
            evidence["unevaluated_signals"] = limited
        attribution = explain(self.categories, scored.scores, scored.attribution)
        side = scored.side_scores()
        if side:
            attribution = side_attribution(self.categories, attribution, scored.scores, side)
        modalities = list(scored.encoded) + [signal for signal in SIDE_SIGNALS if signal in side]
        return ModerationResult(
            id=item_id, scores=scores, decision=decision, attribution=attribution,
            evidence=evidence, modalities=modalities,
            model_version=self.model_version, embedding=embedding, latency_ms=latency)

    def silent_signals(self) -> dict[str, frozenset[str]]:
        """Category -> the side signals that give it no score (nudity speaks to ``sexual`` only)."""
        return {c: frozenset({"nudity"}) for j, c in enumerate(self.categories) if j not in self.nudity_categories}

    @staticmethod
    def unevaluated(scores: Mapping[str, float], trusted: Mapping[str, float | None], decision, market: str | None,
                    present: frozenset[str], policy: Policy,
                    silent: Mapping[str, frozenset[str]] | None = None) -> dict[str, dict[str, Any]]:
        """The categories whose action differs from what their score alone would take, because part of that score
        rests on signals not evaluated on real content for them: held at review (or below), or decided by the
        evaluated signals' own score. What the evidence says about each (``silent``: per category, signals that
        give it no score and so are not named)."""
        reasons = {r.category: r for r in decision.reasons}
        out = {}
        for category, evaluated_score in trusted.items():
            rule = policy.rule(category, market)
            if rule is None:
                continue
            would = rule.action_for(scores[category])[0].label
            reason = reasons.get(category)
            took = reason.action if reason is not None else "allow"
            # Within float noise: served and in-process scores of one item differ in the 7th place, and an exact
            # test would call the same decision "by the evaluated signals" on one path and not the other.
            by_evaluated = reason is not None and abs(reason.score - scores[category]) > EVALUATED_ATOL
            if took == would and not by_evaluated:
                continue
            signals = sorted(present - policy.trusted(category) - (silent or {}).get(category, frozenset()))
            out[category] = {
                "signals": signals, "score": scores[category], "evaluated_score": evaluated_score,
                "would_have": would, "took": took,
                "why": ("decided by the evaluated signals' own score" if by_evaluated else
                        f"{', '.join(signals)} not evaluated on real content for {category}: at most review")}
        return out

    def evidence(self, prepared: Mapping[str, Any], encoded: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, Any]:
        """Where the encoders fired: the top video frames (with timestamps) and the strongest audio window."""
        evidence = {}
        video = encoded.get("video", {})
        if "frame_weights" in video and "video_timestamps" in prepared:
            weights = np.asarray(video["frame_weights"])
            evidence["video_top_frames"] = [
                {"timestamp_s": round(float(prepared["video_timestamps"][i]), 3), "weight": round(float(weights[i]), 4)}
                for i in np.argsort(-weights)[:TOP_FRAMES]]
        audio = encoded.get("audio", {})
        if "time_profile" in audio:
            evidence["audio_top_window"] = top_time_window(
                audio["time_profile"], prepared["audio"].shape[-1], self.audio.hop_length, self.audio.sample_rate,
                self.audio.clip_seconds)
        return evidence

    # -- whole samples ----------------------------------------------------------------------------
    async def moderate_prepared(self, ids: Sequence[str], prepared: Sequence[Mapping[str, Any]],
                                markets: Sequence[str | None] | None = None,
                                with_embedding: bool = False) -> list[ModerationResult]:
        """Results for items already prepared elsewhere (a scan's preprocessing tasks), as one batch."""
        markets = list(markets) if markets is not None else [None] * len(prepared)
        scored = await self.score(prepared) if prepared else []
        return [self.result(i, p, s, m, with_embedding=with_embedding)
                for i, p, s, m in zip(ids, prepared, scored, markets)]

    async def moderate(self, samples: Sequence[Sample], base_uri: str | None = None) -> list[ModerationResult]:
        """Results for samples, scored as one batch; each sample's market is ``sample.meta["market"]``.

        Raises:
            MediaError: for the first sample that cannot be prepared (callers that must isolate bad items
                prepare them one by one with :meth:`prepare`).
        """
        prepared = [self.prepare(s, base_uri) for s in samples]
        return await self.moderate_prepared([s.id for s in samples], prepared,
                                            [s.meta.get("market") for s in samples])

    # -- long media --------------------------------------------------------------------------------
    def decision_scores(self, scored: Scored, policy: Policy) -> np.ndarray:
        """Per category the score ``policy`` decides by: the evaluated signals' own where the category has them
        and others too, else the combined score (long media's windows are ranked by it)."""
        combined = self.combined_scores(scored)
        trusted = self.trusted_scores(scored, policy)
        return np.asarray([trusted[c] if trusted.get(c) is not None else combined[j]
                           for j, c in enumerate(self.categories)])

    def window_item(self, window: Window) -> dict[str, Any]:
        """One window of long media prepared like a short clip's audio (a 16 kHz waveform)."""
        item: dict[str, Any] = {}
        if "audio" in self.modalities:
            item["audio"] = self.preprocessor.audio(window.wave, SAMPLE_RATE)
        if self.speech:
            item["speech"] = window.wave
        return item

    async def moderate_long(self, sample: Sample, base_uri: str | None = None, market: str | None = None,
                            progress: Callable[[float, float | None], None] | None = None,
                            with_embedding: bool = False) -> ModerationResult:
        """The result for one item with long audio or video: its soundtrack streamed in windows
        (:mod:`tripwire.data.longform`), each scored like a short clip, folded into one result
        (:mod:`tripwire.moderation.windowed`); its text and image, if any, are scored once beside them.

        Memory is bounded by ``batch_windows`` windows, whatever the length. ``progress(done_s, total_s)`` is
        called after each batch of windows (``total_s`` None where the container states no length). A long
        video's frames are not scored (its soundtrack is).

        Raises:
            MediaError: naming the field: missing, corrupt, no audio stream, or over the windows' limits.
        """
        field = "audio" if sample.audio is not None else "video" if sample.video is not None else None
        if field is None:
            raise MediaError("item", "not_long", "long media needs an audio or video field")
        config = self.preprocessor.config.windows
        policy = self.policy
        fold = WindowFold(self.categories, config, lambda s: self.decision_scores(s, policy))
        rest = Sample(id=sample.id, text=sample.text, image=sample.image, meta=sample.meta)
        if rest.modalities:
            prepared = await asyncio.to_thread(self.prepare, rest, base_uri)
            fold.add_part((await self.score([prepared], policy))[0])
        windows = audio_windows(field, getattr(sample, field), base_uri, config, SAMPLE_RATE)
        try:
            following = await asyncio.to_thread(next, windows, None)
            batch: list[tuple[Window, bool]] = []
            while following is not None:
                window = following
                following = await asyncio.to_thread(next, windows, None)
                batch.append((window, following is None))
                if len(batch) == config.batch_windows or following is None:
                    scored = await self.score([self.window_item(w) for w, _ in batch], policy)
                    for (w, last), s in zip(batch, scored):
                        fold.add(w, s, last)
                    if progress is not None:
                        progress(batch[-1][0].end_s, batch[-1][0].media_s)
                    batch = []
        finally:
            windows.close()
        return self.result(sample.id, {}, fold.scored(), market, with_embedding=with_embedding)

    def moderate_long_sync(self, sample: Sample, base_uri: str | None = None, market: str | None = None,
                           progress: Callable[[float, float | None], None] | None = None,
                           with_embedding: bool = False) -> ModerationResult:
        """:meth:`moderate_long` for synchronous callers (scan actors, the demo, benchmarks)."""
        return asyncio.run(self.moderate_long(sample, base_uri, market, progress, with_embedding))

    def moderate_sync(self, samples: Sequence[Sample], base_uri: str | None = None) -> list[ModerationResult]:
        """:meth:`moderate` for synchronous callers (scan actors, the demo, benchmarks, tests)."""
        return asyncio.run(self.moderate(samples, base_uri))

    def moderate_prepared_sync(self, ids: Sequence[str], prepared: Sequence[Mapping[str, Any]],
                               markets: Sequence[str | None] | None = None,
                               with_embedding: bool = False) -> list[ModerationResult]:
        return asyncio.run(self.moderate_prepared(ids, prepared, markets, with_embedding))

