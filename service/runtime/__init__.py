"""ONNX Runtime: provider detection, sessions, warm-up and the model's safety checks."""

from service.runtime.providers import ProviderChoice, choose_providers
from service.runtime.session import OnnxModel, load_model

__all__ = ["OnnxModel", "ProviderChoice", "choose_providers", "load_model"]
