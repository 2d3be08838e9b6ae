"""The forecasting models: plain PyTorch modules, no training loop, no I/O.

- `SequenceLSTM` (the default): a causal sequence model. It reads the feature sequence
  and emits a forecast at every step, carrying its state across bars, so a forecast per
  bar costs one LSTM step whatever the lookback.
- `WindowLSTM`: the classic model of the literature, last `window` bars -> one forecast.

Both end in a linear head: "regression" forecasts the forward log return (in units of the
training target's standard deviation; the predictor scales it back), "direction" gives
the logit of an up move.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

MODEL_KINDS = ("sequence", "window")
HEADS = ("regression", "direction")

State = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of one forecaster."""

    kind: str = "sequence"
    hidden_size: int = 64
    num_layers: int = 2
    dropout: float = 0.0
    head: str = "regression"
    window: int = 60  # bars per input window (window model only)

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"model.kind={self.kind!r}; choose one of {MODEL_KINDS}.")
        if self.head not in HEADS:
            raise ValueError(f"model.head={self.head!r}; choose one of {HEADS}.")
        if self.hidden_size < 1 or self.num_layers < 1 or self.window < 2:
            raise ValueError("model.hidden_size and num_layers must be >= 1, window >= 2.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout}.")


class _LSTMWithHead(nn.Module):
    """An nn.LSTM (batch first) and a linear head from its hidden state to one number."""

    def __init__(self, n_features: int, config: ModelConfig) -> None:
        super().__init__()
        self.lstm = nn.LSTM(
            n_features, config.hidden_size, config.num_layers, batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        self.head = nn.Linear(config.hidden_size, 1)


class SequenceLSTM(_LSTMWithHead):
    """Causal LSTM: output at step t depends only on inputs at steps <= t."""

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        # x: [batch, time, features] -> forecasts [batch, time], state ([layers, batch, hidden],)*2
        out, state = self.lstm(x, state)
        return self.head(out).squeeze(-1), state


class WindowLSTM(_LSTMWithHead):
    """Window model: an LSTM over the last `window` bars, forecast from its final output."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [batch, window, features] -> forecasts [batch]
        out, _ = self.lstm(x)
        return self.head(out[:, -1]).squeeze(-1)


def build_model(n_features: int, config: ModelConfig) -> nn.Module:
    """A fresh, untrained model for `n_features` inputs."""
    if config.kind == "sequence":
        return SequenceLSTM(n_features, config)
    return WindowLSTM(n_features, config)
