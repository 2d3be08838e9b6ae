"""Forecasting models behind one interface (`ForecastModel`) and a registry of kinds.

    sequence  SequenceLSTM: causal, state carried across bars (the default)
    window    WindowLSTM: the last `window` bars in, one forecast out
    pooled    PooledLSTM: one sequence LSTM for many assets (shared weights, own states)
    lstm_gnn  LSTMGNN: the pooled LSTM with its states mixed across assets by graph layers

A model of your own subclasses `SequenceModel` (a plain sequence module; see user.py) or
`ForecastModel`, and a config names it by import path (`model.class: mypkg.models:MyGRU`,
or `path/to/file.py:MyGRU`), by a name it `@register`s, or through the entry point group
`lstm_strategy.models` of an installed package. No other module asks which kind it has.
"""

from .base import (
    MODELS,
    ForecastModel,
    ModelConfig,
    TrainingChunk,
    build_model,
    class_path,
    model_class,
    register,
)
from .lstm_gnn import LSTMGNN
from .pooled import PooledLSTM
from .sequence import SequenceLSTM
from .user import SequenceModel
from .window import WindowLSTM

__all__ = ["LSTMGNN", "MODELS", "ForecastModel", "ModelConfig", "PooledLSTM", "SequenceLSTM",
           "SequenceModel", "TrainingChunk", "WindowLSTM", "build_model", "class_path",
           "model_class", "register"]
