"""A deterministic synthetic multimodal corpus: real media files plus a manifest.

This corpus is synthetic. It exists so the whole platform (decode, train, serve, evaluate) runs end to
end on a laptop with no downloads, and so tests can check that the model really learns every modality.

Each violating item carries one *signature* of its category in exactly one of its modalities (a phrase in
the text, a coloured shape in the image, a chord or noise pattern in the audio, the shape in a run of video
frames or in the video's soundtrack); its other modalities are benign. *Combination* items pair a benign
text phrase with a benign image/video pattern (a crosshair) that only together mean a targeted threat;
benign decoys carry either half alone, so a model can only get them right by fusing modalities.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tripwire.policy import Taxonomy
from tripwire.sample import Sample, write_manifest

SIGNATURES = (
    "hate",
    "harassment",
    "harassment/threatening",
    "sexual",
    "violence",
    "violence/graphic",
    "self_harm",
    "illicit",
)
COMBINATION_LABELS = ("harassment", "harassment/threatening")

SUBJECTS = ["my cat", "the neighbour", "our team", "my sister", "the chef", "a tourist", "grandpa", "the band",
            "my friend", "the teacher", "a kid", "the barista", "our dog", "the pilot", "my uncle"]
VERBS = ["watched", "painted", "cooked", "found", "photographed", "visited", "cleaned", "fixed", "sang about",
         "ordered", "planted", "shared", "built", "read about", "recorded"]
OBJECTS = ["the sunset", "a new bike", "some pasta", "the garden", "an old map", "the lake", "a birthday cake",
           "the museum", "a tiny boat", "the mountains", "a jazz record", "the market", "fresh bread", "a kite"]
TAILS = ["this morning", "yesterday", "all weekend", "after work", "with friends", "in the rain", "for fun",
         "last summer", "at noon", "again today", ""]
PHRASES = {
    "hate": ["those people are vermin and should be removed", "their kind is subhuman filth",
             "that whole group is a disease on this country", "people like them are animals not humans"],
    "harassment": ["you are a pathetic worthless loser", "nobody likes you, you ugly idiot",
                   "what a disgusting clown you are", "shut up you braindead moron"],
    "harassment/threatening": ["i know where you live and i am coming", "watch your back tonight, you are next",
                               "we will find you and make you pay", "sleep with one eye open loser, i am outside"],
    "sexual": ["explicit nude photos, uncensored and nsfw", "hot xxx porn video full of explicit sex",
               "send nudes, explicit adult content inside", "uncensored sex tape with graphic nudity"],
    "violence": ["we beat him up and punched him until he fell", "let's attack them with bats tonight",
                 "he stabbed the guy during the brawl", "kick his teeth in and break his arms"],
    "violence/graphic": ["blood and gore everywhere, his guts spilled out", "the mangled corpse was dripping blood",
                         "severed limbs and brains splattered on the wall", "gory close-up of the bloody wounds"],
    "self_harm": ["i want to cut myself again tonight", "thinking about ending it all, pills are ready",
                  "i deserve to hurt myself, the razor helps", "i plan to kill myself this weekend"],
    "illicit": ["buy cocaine and meth, discreet shipping", "selling stolen credit cards and fake passports",
                "cheap unregistered guns, no questions asked", "counterfeit cash for sale, dm for prices"],
}
COMBINATION_PHRASES = ["look who it is", "found you", "this is your street", "see you very soon",
                       "nice house you have", "remember this place"]

# RGB colour and shape per signature; benign shapes use a muted palette that avoids these.
IMAGE_SIGNATURES = {
    "hate": ((220, 20, 20), "triangle"),
    "harassment": ((255, 140, 0), "cross"),
    "harassment/threatening": ((150, 0, 200), "cross"),
    "sexual": ((255, 105, 180), "disc"),
    "violence": ((120, 0, 0), "stripes"),
    "violence/graphic": ((255, 0, 0), "splatter"),
    "self_harm": ((200, 30, 60), "lines"),
    "illicit": ((250, 250, 250), "pills"),
}
# Audio signatures: (tone frequencies in Hz, modulation).
AUDIO_SIGNATURES = {
    "hate": ((1000.0, 1500.0), "steady"),
    "harassment": ((2000.0,), "pulsed"),
    "harassment/threatening": ((2500.0, 3200.0), "pulsed"),
    "sexual": ((1200.0,), "tremolo"),
    "violence": ((), "bursts"),
    "violence/graphic": ((3600.0,), "bursts"),
    "self_harm": ((1800.0, 1300.0), "chirp"),
    "illicit": ((4500.0, 5200.0), "steady"),
}
MODALITY_MIXES = [
    (("text",), 0.20), (("image",), 0.10), (("audio",), 0.08), (("video",), 0.08),
    (("text", "image"), 0.20), (("text", "audio"), 0.08), (("text", "video"), 0.10),
    (("image", "audio"), 0.05), (("text", "image", "audio"), 0.06), (("text", "image", "audio", "video"), 0.05),
]


@dataclass(frozen=True)
class CorpusSpec:
    """What to generate. The defaults make the demo corpus; tests shrink ``num_items`` and sizes."""

    num_items: int = 2400
    seed: int = 7
    image_size: int = 64
    audio_seconds: float = 1.0
    video_frames: int = 16
    video_fps: int = 8
    violating_fraction: float = 0.45
    combination_fraction: float = 0.12
    # category -> relative weight of its signature among violating items (unlisted categories weigh 1.0), so
    # a corpus can hold a rare category (e.g. (("self_harm", 0.05),)) for active-learning benchmarks.
    signature_weights: tuple[tuple[str, float], ...] | None = None

    def __post_init__(self):
        for category, weight in self.signature_weights or ():
            if category not in SIGNATURES:
                raise ValueError(f"signature_weights: unknown category {category!r}; known: {list(SIGNATURES)}")
            if not weight >= 0.0:
                raise ValueError(f"signature_weights.{category}: weight {weight} must be >= 0")
        if self.signature_weights is not None and self.signature_probabilities() is None:
            raise ValueError("signature_weights: at least one signature needs a positive weight")

    def signature_probabilities(self) -> np.ndarray | None:
        """Probability per entry of SIGNATURES, or None for the uniform draw (the historical RNG sequence)."""
        if self.signature_weights is None:
            return None
        listed = dict(self.signature_weights)
        weights = np.array([float(listed.get(c, 1.0)) for c in SIGNATURES])
        return weights / weights.sum() if weights.sum() > 0 else None


def _benign_text(rng: np.random.Generator) -> str:
    words = [rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS), rng.choice(TAILS)]
    return " ".join(w for w in words if w)


def _insert(rng: np.random.Generator, base: str, phrase: str) -> str:
    return f"{phrase}, {base}" if rng.random() < 0.5 else f"{base}. {phrase}"


def make_text(rng: np.random.Generator, signature: str | None, combination: bool) -> str:
    text = _benign_text(rng)
    if combination:
        text = _insert(rng, text, str(rng.choice(COMBINATION_PHRASES)))
    if signature:
        text = _insert(rng, text, str(rng.choice(PHRASES[signature])))
    return text


def _canvas(rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = rng.integers(60, 200, size=3)
    tilt = rng.integers(-50, 50, size=3)
    img = base[None, None, :] + tilt[None, None, :] * (xx[..., None] * 0.6 + yy[..., None] * 0.4)
    img = img + rng.normal(0, 6, size=(size, size, 3))
    return np.clip(img, 0, 255)


def _draw_shape(img: np.ndarray, rng: np.random.Generator, color, shape: str, scale: float = 1.0) -> None:
    size = img.shape[0]
    yy, xx = np.mgrid[0:size, 0:size]
    r = int(size * rng.uniform(0.18, 0.28) * scale)
    cy, cx = rng.integers(r, size - r, size=2)
    if shape == "disc":
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    elif shape == "rect":
        mask = (abs(yy - cy) <= r * 0.8) & (abs(xx - cx) <= r)
    elif shape == "triangle":
        mask = (yy - cy >= -r) & (yy - cy <= r) & (abs(xx - cx) <= (yy - cy + r) / 2)
    elif shape == "cross":
        w = max(2, r // 3)
        mask = ((abs((yy - cy) - (xx - cx)) <= w) | (abs((yy - cy) + (xx - cx)) <= w)) & (
            abs(yy - cy) <= r) & (abs(xx - cx) <= r)
    elif shape == "stripes":
        mask = ((xx + yy) // max(2, size // 10)) % 2 == 0
    elif shape == "splatter":
        mask = np.zeros_like(yy, dtype=bool)
        for _ in range(14):
            py, px = rng.integers(0, size, size=2)
            mask |= (yy - py) ** 2 + (xx - px) ** 2 <= rng.integers(2, max(3, size // 10)) ** 2
    elif shape == "lines":
        mask = ((yy // max(2, size // 12)) % 3 == 0) & (abs(xx - cx) <= r * 1.5)
    elif shape == "pills":
        mask = ((yy % max(4, size // 6)) < 3) & ((xx % max(4, size // 6)) < 5)
    elif shape == "crosshair":
        w = max(1, size // 40)
        ring = np.abs(np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) - r) <= w
        mask = ring | ((abs(yy - cy) <= w) & (abs(xx - cx) <= r * 1.3)) | ((abs(xx - cx) <= w) & (abs(yy - cy) <= r * 1.3))
    else:
        raise ValueError(shape)
    img[mask] = color


def _benign_shapes(img: np.ndarray, rng: np.random.Generator) -> None:
    for _ in range(rng.integers(1, 4)):
        muted = rng.integers(40, 140, size=3) + np.array([0, 30, 60])
        _draw_shape(img, rng, muted, str(rng.choice(["disc", "rect"])), scale=rng.uniform(0.6, 1.1))


def make_image(rng: np.random.Generator, size: int, signature: str | None, combination: bool) -> np.ndarray:
    img = _canvas(rng, size)
    _benign_shapes(img, rng)
    if combination:
        _draw_shape(img, rng, (20, 20, 20), "crosshair")
    if signature:
        color, shape = IMAGE_SIGNATURES[signature]
        _draw_shape(img, rng, color, shape)
    return img.astype(np.uint8)


def make_audio(rng: np.random.Generator, rate: int, seconds: float, signature: str | None) -> np.ndarray:
    n = int(rate * seconds)
    t = np.arange(n) / rate
    wave = np.zeros(n)
    for _ in range(rng.integers(1, 3)):  # benign low hum and melody
        wave += rng.uniform(0.05, 0.2) * np.sin(2 * math.pi * rng.uniform(90, 600) * t + rng.uniform(0, 6.28))
    wave += rng.normal(0, 0.01, n)
    if signature:
        freqs, mode = AUDIO_SIGNATURES[signature]
        amp = rng.uniform(0.2, 0.35)
        if mode == "chirp":
            f0, f1 = freqs
            phase = 2 * math.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds))
            sig = np.sin(phase)
        else:
            sig = sum(np.sin(2 * math.pi * f * t + rng.uniform(0, 6.28)) for f in freqs) if freqs else np.zeros(n)
        if mode == "pulsed":
            sig = sig * (np.sin(2 * math.pi * 6 * t) > 0)
        elif mode == "tremolo":
            sig = sig * (0.5 + 0.5 * np.sin(2 * math.pi * 12 * t))
        elif mode == "bursts":
            gate = (np.sin(2 * math.pi * 4 * t + rng.uniform(0, 6.28)) > 0.3).astype(float)
            sig = sig * 0.5 + rng.normal(0, 0.6, n) * gate
        wave += amp * sig
    return (0.9 * wave / max(1.0, np.abs(wave).max())).astype(np.float32)


def encode_image(img: np.ndarray, fmt: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    return buf.getvalue()


def encode_audio(wave: np.ndarray, rate: int, fmt: str) -> bytes:
    import soundfile

    buf = io.BytesIO()
    soundfile.write(buf, wave, rate, format=fmt, subtype="PCM_16")
    return buf.getvalue()


def encode_video(frames: list[np.ndarray], fps: int, fmt: str, audio: np.ndarray | None, rate: int) -> bytes:
    """Encodes RGB frames (and an optional mono soundtrack) as MP4 (MPEG-4 Part 2 + AAC) or WebM (VP8 + Opus)."""
    import av

    buf = io.BytesIO()
    video_codec, audio_codec = ("mpeg4", "aac") if fmt == "mp4" else ("libvpx", "libopus")
    # bitexact: no random track UIDs or encoder tags, so the same frames always give the same bytes.
    with av.open(buf, mode="w", format=fmt, container_options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream(video_codec, rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 400_000
        astream = None
        if audio is not None:
            astream = container.add_stream(audio_codec, rate=48000 if audio_codec == "libopus" else rate)
            astream.layout = "mono"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
        if astream is not None:
            sound = audio
            if astream.rate != rate:  # Opus takes 48 kHz only
                sound = np.interp(np.arange(int(len(audio) * astream.rate / rate)) * rate / astream.rate,
                                  np.arange(len(audio)), audio).astype(np.float32)
            chunk = 1024
            for start in range(0, len(sound), chunk):
                piece = sound[start:start + chunk][None, :]
                aframe = av.AudioFrame.from_ndarray(np.ascontiguousarray(piece), format="flt", layout="mono")
                aframe.sample_rate = astream.rate
                aframe.pts = start
                for packet in astream.encode(aframe):
                    container.mux(packet)
            for packet in astream.encode(None):
                container.mux(packet)
    return buf.getvalue()


def make_video_frames(rng: np.random.Generator, spec: CorpusSpec, signature: str | None, combination: bool):
    size = spec.image_size
    background = _canvas(rng, size)
    _benign_shapes(background, rng)
    n = spec.video_frames
    # The signature shows in a contiguous run covering at least half the clip, so uniform sampling sees it.
    start = int(rng.integers(0, n // 2 + 1))
    run = range(start, start + n // 2)
    frames = []
    drift = rng.integers(-2, 3, size=2)
    sig_rng_seed = int(rng.integers(0, 2**31))
    for i in range(n):
        frame = np.roll(background, shift=tuple(int(d) * i for d in drift), axis=(0, 1)).copy()
        local = np.random.default_rng(sig_rng_seed)  # same placement in every frame of the run
        if combination and i in run:
            _draw_shape(frame, local, (20, 20, 20), "crosshair")
        if signature and i in run:
            color, shape = IMAGE_SIGNATURES[signature]
            _draw_shape(frame, local, color, shape)
        frames.append(frame.astype(np.uint8))
    return frames


def _choose_signature(rng: np.random.Generator, p: np.ndarray | None) -> str:
    # Without weights keep the exact historical call: ``choice(a)`` and ``choice(a, p=...)`` consume the
    # generator differently, and the default corpus must stay byte-identical.
    return str(rng.choice(SIGNATURES)) if p is None else str(rng.choice(SIGNATURES, p=p))


def generate_corpus(out_dir: str | Path, spec: CorpusSpec = CorpusSpec(), taxonomy: Taxonomy | None = None,
                    manifest_name: str = "manifest.jsonl", progress: bool = False) -> Path:
    """Writes media files and a manifest under ``out_dir``; the same spec always gives the same bytes.

    Returns:
        The manifest path.
    """
    taxonomy = taxonomy or Taxonomy.load()
    missing = [c for c in (*SIGNATURES, *COMBINATION_LABELS) if c not in taxonomy.names]
    if missing:
        raise ValueError(f"taxonomy {taxonomy.version} lacks categories the generator labels: {missing}")
    out = Path(out_dir)
    for sub in ("image", "audio", "video"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    mixes, weights = zip(*MODALITY_MIXES)
    weights = np.array(weights) / sum(weights)
    signature_p = spec.signature_probabilities()
    samples = []
    for index in range(spec.num_items):
        item_id = f"syn-{index:05d}"
        mix = mixes[rng.choice(len(mixes), p=weights)]
        visual = [m for m in ("image", "video") if m in mix]
        roll = rng.random()
        combination = "text" in mix and bool(visual) and roll < spec.combination_fraction
        signature = None
        if not combination and roll < spec.combination_fraction + spec.violating_fraction:
            signature = _choose_signature(rng, signature_p)
        # Which modality carries the signature; a video's soundtrack is a carrier of its own.
        has_soundtrack = "video" in mix and rng.random() < 0.5
        carriers = list(mix) + (["soundtrack"] if has_soundtrack else [])
        carrier = str(rng.choice(carriers)) if signature else None
        combo_visual = str(rng.choice(visual)) if combination else None
        # Benign decoys: half a combination alone must not be flagged.
        decoy = None
        if signature is None and not combination and rng.random() < 0.3:
            decoy = str(rng.choice(["text"] + visual)) if "text" in mix or visual else None
            if decoy == "text" and "text" not in mix:
                decoy = None
        labels = {c: 0 for c in taxonomy.names}
        if signature:
            labels[signature] = 1
            if "/" in signature:
                labels[signature.split("/")[0]] = 1
        if combination:
            for c in COMBINATION_LABELS:
                labels[c] = 1
        row = {"id": item_id, "labels": labels,
               "meta": {"language": "en", "market": str(rng.choice(["DE", "US", "FR", "BR"])),
                        "content_type": "post", "source": "synthetic"}}
        if "text" in mix:
            row["text"] = make_text(rng, signature if carrier == "text" else None,
                                    combination or decoy == "text")
        if "image" in mix:
            fmt = "PNG" if rng.random() < 0.6 else "JPEG"
            img = make_image(rng, spec.image_size, signature if carrier == "image" else None,
                             combo_visual == "image" or decoy == "image")
            name = f"image/{item_id}.{'png' if fmt == 'PNG' else 'jpg'}"
            (out / name).write_bytes(encode_image(img, fmt))
            row["image"] = name
        if "audio" in mix:
            rate = int(rng.choice([16000, 22050]))
            fmt = "WAV" if rng.random() < 0.6 else "FLAC"
            wave = make_audio(rng, rate, spec.audio_seconds, signature if carrier == "audio" else None)
            name = f"audio/{item_id}.{fmt.lower()}"
            (out / name).write_bytes(encode_audio(wave, rate, fmt))
            row["audio"] = name
        if "video" in mix:
            fmt = "mp4" if rng.random() < 0.8 else "webm"
            frames = make_video_frames(rng, spec, signature if carrier == "video" else None,
                                       combo_visual == "video" or decoy == "video")
            sound = None
            if has_soundtrack:
                seconds = spec.video_frames / spec.video_fps
                sound = make_audio(rng, 16000, seconds, signature if carrier == "soundtrack" else None)
            name = f"video/{item_id}.{fmt}"
            (out / name).write_bytes(encode_video(frames, spec.video_fps, fmt, sound, 16000))
            row["video"] = name
        samples.append(Sample.from_row(row))
        if progress and (index + 1) % 500 == 0:
            print(f"[corpus] {index + 1}/{spec.num_items} items", flush=True)
    manifest = out / manifest_name
    write_manifest(samples, str(manifest))
    return manifest
