"""Forecasting models behind one interface (`ForecastModel`) and a registry of kinds.

    sequence  SequenceLSTM: causal, state carried across bars (the default)
    window    WindowLSTM: the last `window` bars in, one forecast out

A new kind subclasses `ForecastModel`, decorates itself with `@register`, and is
imported here; `ModelConfig(kind=...)` and every other module then take it as it is.
"""

from .base import MODELS, ForecastModel, ModelConfig, TrainingChunk, build_model, register
from .sequence import SequenceLSTM
from .window import WindowLSTM

__all__ = ["MODELS", "ForecastModel", "ModelConfig", "SequenceLSTM", "TrainingChunk",
           "WindowLSTM", "build_model", "register"]
