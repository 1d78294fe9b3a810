"""Tripwire: a multimodal content-safety platform on Ray.

The library that training (``pipelines/``) and serving (``deployments/``) both import: the sample
contract and media decoding, preprocessing, the model (encoders + fusion head), checkpoints, the policy
taxonomy and decisions, and training/evaluation logic.
"""

__version__ = "0.1.0"

MODALITIES = ("text", "image", "audio", "video")
