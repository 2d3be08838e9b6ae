"""What every forecasting model offers the rest of the package, and the registry of kinds.

A model is a plain PyTorch module plus a few methods that say how it reads a span of
feature rows: how many rows of context it needs before its first forecast, how a
training span is cut into batches, how it forecasts a whole segment in fixed-shape calls
(so no forecast depends on how many rows follow it), and how it steps one row at a time.
Training loops (training.py) and inference (forecaster.py) use only these methods, so
no code outside models/ asks which kind of model it has.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError

# the registry and the configs, torch-free (kinds.py); here for the names' old home
from .kinds import (  # noqa: F401
    CLASSES,
    ENTRY_POINTS,
    HEADS,
    LEGACY_KNOBS,
    MODELS,
    LSTMParams,
    ModelConfig,
    NoParams,
    builtin_knob_types,
    builtin_knobs,
    check_params,
    class_path,
    kind_params,
    model_class,
    register,
)

# LSTM steps per model call when a whole span is run (forecasts, validation): one fixed
# shape, so no output depends on how many rows follow it, and no single cuDNN call is
# longer than it supports (100,000 steps in one call failed on an H200)
CHUNK_BARS = 256

State = Any  # whatever a model carries from one call to the next (None = cold)


class TrainingChunk(NamedTuple):
    """One optimisation step's worth of a training span."""

    inputs: torch.Tensor  # [batch, steps, features]
    labels: torch.Tensor  # [batch, outputs]
    mask: torch.Tensor | None  # [batch, outputs] weights of each label, None = all count
    rows: torch.Tensor  # [batch, outputs] row of the span each label belongs to
    carry: bool  # continue from the previous chunk's state
    has_loss: bool  # False: the chunk only advances the state


class ForecastModel(nn.Module):
    """What a forecasting model offers training (training.py) and inference (forecaster.py).

    `forward(x, state)` maps inputs [batch, steps, features] to (outputs [batch, outputs],
    state). The causal rule every method keeps: an output for row t depends on rows <= t
    only. Most users subclass `SequenceModel`, which implements everything below for a
    plain sequence module; a kind with its own batching implements the methods itself.
    """

    kind: ClassVar[str] = ""
    multi_asset: ClassVar[bool] = False  # one model over [rows, assets, features] inputs
    uses_graph: ClassVar[bool] = False  # wants `set_graph` at every retrain
    Params: ClassVar[type] = NoParams  # the dataclass of this kind's own params

    def __init__(self, n_features: int, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.n_features = n_features
        self.params = check_params(type(self), config.params)

    def context_rows(self, context_bars: int) -> int:
        """Rows before a segment's first forecast that a forecast needs (warm-up or window)."""
        raise NotImplementedError

    def training_chunks(self, x: torch.Tensor, labels: torch.Tensor, train: torch.Tensor,
                        config: Any, rng: np.random.Generator) -> Iterator[TrainingChunk]:
        """One epoch over a training span x [rows, features]; `train` marks usable labels."""
        raise NotImplementedError

    def validation_loss(self, x: torch.Tensor, labels: torch.Tensor, val: torch.Tensor,
                        loss_fn: nn.Module) -> float:
        """Mean loss over the rows marked by `val` (NaN when none)."""
        raise NotImplementedError

    def forecast_segment(self, x: torch.Tensor, chunk_bars: int, batch_size: int
                         ) -> torch.Tensor:
        """Raw outputs [rows] for consecutive rows from a cold start (NaN until ready).

        Every call has one fixed shape (the last one padded), so an output never depends
        on how many rows follow it: a GEMM's float rounding can depend on its row count.
        """
        raise NotImplementedError

    def stream_start(self) -> State:
        """A cold streaming state."""
        return None

    def stream_warm(self, x: torch.Tensor, state: State) -> State:
        """Advance the state over rows x [rows, features] without forecasting."""
        raise NotImplementedError

    def stream_step(self, x: torch.Tensor, state: State) -> tuple[float, State]:
        """The raw output for one row x [features] (NaN until ready) and the new state."""
        raise NotImplementedError

    def host_stepper(self, mean: np.ndarray, std: np.ndarray, target_std: float,
                     direction: bool) -> Any | None:
        """A host copy of `stream_step`, fused with the scaling (`mean`, `std`) and the
        output (sigmoid, or times `target_std`), for where torch's per-call cost dominates.
        It holds its state: `step(raw_row) -> forecast` (NaN, state kept, on an incomplete
        row), `reset()`, `to_torch(device)` and `load_torch(state)` (warming runs in torch)."""
        return None


class LSTMModel(ForecastModel):
    """The built-in kinds' body: an nn.LSTM (batch first) and a linear head from its
    hidden state to one number, sized by its params (LSTMParams or a subclass)."""

    Params = LSTMParams

    def __init__(self, n_features: int, config: ModelConfig) -> None:
        super().__init__(n_features, config)
        p = self.params
        self.lstm = nn.LSTM(n_features, p.hidden_size, p.num_layers, batch_first=True,
                            dropout=p.dropout if p.num_layers > 1 else 0.0)
        self.head = nn.Linear(p.hidden_size, 1)


def steps_on_host(model: ForecastModel) -> bool:
    """Whether the model offers a host stepper (streams step it, not torch, once a bar)."""
    return type(model).host_stepper is not ForecastModel.host_stepper


def detach_state(state: State) -> State:
    """A recurrent state cut from its graph (tensors, or tuples/lists of them)."""
    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, tuple | list):
        return type(state)(detach_state(s) for s in state)
    return state


def pad_rows(x: torch.Tensor, rows: int) -> torch.Tensor:
    """`x` with zero rows appended up to `rows` along the first dimension."""
    if len(x) == rows:
        return x
    return torch.cat([x, x.new_zeros((rows - len(x), *x.shape[1:]))])


def build_model(n_features: int, config: ModelConfig, n_assets: int = 1) -> ForecastModel:
    """A fresh, untrained model of the configured kind for `n_features` inputs per asset."""
    cls = config.model_class
    if cls.multi_asset:
        return cls(n_features, config, n_assets)
    if n_assets != 1:
        raise ConfigError(f"model.kind={config.kind} forecasts one asset; for {n_assets} at "
                          f"once choose one of "
                          f"{sorted(k for k in MODELS if kind_params(k)[1])}.")
    return cls(n_features, config)
