"""Expert models: pretrained detectors that turn media into signals the trained model can score or that score a
category themselves: speech into a transcript with word times, pictures into the lines of text drawn in them, and
pictures into a nudity probability with regions. Each is a registered part with a fixed interface, run in-process,
in Ray Data tasks and as a Serve deployment; its weights are configuration and recorded by hash."""

from tripwire.experts.nudity import NUDITY_EXPERTS, NudityExpert, NudityReading, Region
from tripwire.experts.ocr import (OCR_EXPERTS, ImageText, OcrExpert, TextBlock, TextLine, has_text,
                                  whole_text)
from tripwire.experts.speech import SPEECH_EXPERTS, SpeechExpert, Segment, Transcript, Word
from tripwire.experts.weights import WeightsRecord
from tripwire.experts.kinds import (EXPERT_KINDS, ExpertKind, expert_class, expert_kind, load_expert,
                                    picture_kinds, reading_from_json, run_expert)
from tripwire.experts import opennsfw, rapid, tesseract, whisper  # noqa: F401  (register their engines)

__all__ = ["EXPERT_KINDS", "ExpertKind", "ImageText", "NUDITY_EXPERTS", "NudityExpert", "NudityReading", "OCR_EXPERTS",
           "OcrExpert", "Region", "SPEECH_EXPERTS", "Segment", "SpeechExpert", "TextBlock", "TextLine",
           "Transcript", "WeightsRecord", "Word", "expert_class", "expert_kind", "has_text", "load_expert",
           "picture_kinds", "reading_from_json", "run_expert", "whole_text"]
