"""Forecasting models behind one interface (`ForecastModel`) and a registry of kinds.

    sequence  SequenceLSTM: causal, state carried across bars (the default)
    window    WindowLSTM: the last `window` bars in, one forecast out
    pooled    PooledLSTM: one sequence LSTM for many assets (shared weights, own states)
    lstm_gnn  LSTMGNN: the pooled LSTM with its states mixed across assets by graph layers

A new kind subclasses `ForecastModel`, decorates itself with `@register`, and is
imported here; `ModelConfig(kind=...)` and every other module then take it as it is.
"""

from .base import MODELS, ForecastModel, ModelConfig, TrainingChunk, build_model, register
from .lstm_gnn import LSTMGNN
from .pooled import PooledLSTM
from .sequence import SequenceLSTM
from .window import WindowLSTM

__all__ = ["LSTMGNN", "MODELS", "ForecastModel", "ModelConfig", "PooledLSTM", "SequenceLSTM",
           "TrainingChunk", "WindowLSTM", "build_model", "register"]
