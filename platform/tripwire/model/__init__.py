"""The multimodal safety model: per-modality encoders, a fusion head, and their composition."""

from tripwire.model.encoders import ENCODERS
from tripwire.model.fusion import FUSION_HEADS
from tripwire.model.safety_model import ComponentConfig, ModelConfig, SafetyModel, build_model

__all__ = ["ENCODERS", "FUSION_HEADS", "ComponentConfig", "ModelConfig", "SafetyModel", "build_model"]
