"""Expert models: pretrained detectors that turn media into signals the trained model can score (speech into
a transcript with word times). Each is a registered part with a fixed interface, run in-process, in Ray Data
tasks and as a Serve deployment; its weights are configuration and recorded by hash."""

from tripwire.experts.speech import SPEECH_EXPERTS, SpeechExpert, Segment, Transcript, Word
from tripwire.experts.weights import WeightsRecord
from tripwire.experts import whisper  # noqa: F401  (registers faster_whisper)

__all__ = ["SPEECH_EXPERTS", "Segment", "SpeechExpert", "Transcript", "WeightsRecord", "Word"]
