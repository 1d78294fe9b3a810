"""The kinds of expert a checkpoint may name (``experts.<kind>``): each kind's registry, the call every engine of
the kind answers, and the typed reading it returns (with one JSON writer and reader, for Serve's hop)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from tripwire.common.config import ConfigError
from tripwire.common.registry import Registry
from tripwire.experts.nudity import NUDITY_EXPERTS, NudityReading
from tripwire.experts.ocr import OCR_EXPERTS, ImageText
from tripwire.experts.speech import SPEECH_EXPERTS, Transcript


@dataclass(frozen=True)
class ExpertKind:
    """Attributes:
        kind: its key in ``experts``.
        registry: its engines.
        method: what an engine is called with a batch of inputs (``transcribe``, ``read``, ``detect``).
        reading: the value each input gets back (``to_json`` / ``from_json``).
        takes: what it is given: ``speech`` (16 kHz waveforms) or ``pictures`` (RGB images and video frames).
        needs_text_encoder: what it finds is text, scored by the checkpoint's text encoder.
        categories: the categories its own score speaks to (and their subcategories); empty for text it finds.
        deployment: its Serve deployment's name.
    """

    kind: str
    registry: Registry
    method: str
    reading: type
    takes: str
    needs_text_encoder: bool
    categories: tuple[str, ...]
    deployment: str


EXPERT_KINDS: dict[str, ExpertKind] = {
    "speech": ExpertKind("speech", SPEECH_EXPERTS, "transcribe", Transcript, "speech", True, (), "SpeechExpert"),
    "ocr": ExpertKind("ocr", OCR_EXPERTS, "read", ImageText, "pictures", True, (), "OcrExpert"),
    "nudity": ExpertKind("nudity", NUDITY_EXPERTS, "detect", NudityReading, "pictures", False, ("sexual",),
                         "NudityExpert"),
}


def picture_kinds(kinds: Iterable[str]) -> list[str]:
    """Those of ``kinds`` (a checkpoint's experts) that read pictures."""
    return [kind for kind in kinds if expert_kind(kind).takes == "pictures"]


def onnx_providers(use_gpu: bool, field: str) -> list[str]:
    """onnxruntime's execution providers for an expert: CUDA first where ``use_gpu`` asks for it (a ConfigError
    naming ``field`` where the installed onnxruntime has no CUDA: the pinned wheel is the CPU build)."""
    import onnxruntime

    if not use_gpu:
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        raise ConfigError(f"{field}: use_gpu needs onnxruntime with CUDA (onnxruntime-gpu); this one has "
                          f"{onnxruntime.get_available_providers()}")
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


def expert_kind(kind: str) -> ExpertKind:
    if kind not in EXPERT_KINDS:
        raise ConfigError(f"experts.{kind}: unknown expert kind; allowed: {sorted(EXPERT_KINDS)}")
    return EXPERT_KINDS[kind]


def expert_class(kind: str, name: str) -> type:
    """The registered engine ``name`` of ``kind`` (a ConfigError naming the field otherwise)."""
    registry = expert_kind(kind).registry
    if name not in registry:
        raise ConfigError(f"experts.{kind}.name: unknown {kind} expert {name!r}; registered: {registry.names()}")
    return registry.get(name)


def load_expert(kind: str, spec: Any) -> Any:
    """The engine a checkpoint's ``experts.<kind>`` names (:class:`tripwire.model.checkpoint.ExpertSpec`)."""
    return expert_class(kind, spec.name)(**spec.args)


def run_expert(kind: str, expert: Any, inputs: Sequence[Any]) -> list[Any]:
    """A batch of inputs through an engine of ``kind``: one reading per input."""
    return getattr(expert, EXPERT_KINDS[kind].method)(inputs)


def reading_from_json(kind: str, data: Mapping[str, Any]) -> Any:
    return EXPERT_KINDS[kind].reading.from_json(data)
