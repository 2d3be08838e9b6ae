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

import importlib

from .kinds import MODELS, ModelConfig, class_path, model_class, register

# the classes load on first use (PEP 562): a config (kinds.py) needs no torch
_CLASSES = {"ForecastModel": ".base", "TrainingChunk": ".base", "build_model": ".base",
            "LSTMGNN": ".lstm_gnn", "PooledLSTM": ".pooled", "SequenceLSTM": ".sequence",
            "SequenceModel": ".user", "WindowLSTM": ".window"}


def __getattr__(name: str) -> object:
    module = _CLASSES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)


__all__ = ["LSTMGNN", "MODELS", "ForecastModel", "ModelConfig", "PooledLSTM", "SequenceLSTM",
           "SequenceModel", "TrainingChunk", "WindowLSTM", "build_model", "class_path",
           "model_class", "register"]
