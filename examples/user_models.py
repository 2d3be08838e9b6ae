"""Two models of your own, outside the package: a GRU (state carried across bars) and a
causal TCN (each output reads a fixed window of rows). Name them in a config:

    model:
      class: examples/user_models.py:GRUForecaster    # or mypkg.models:GRUForecaster
      params: {hidden_size: 32, layers: 1}

Each declares its knobs as a dataclass (`Params`), builds its layers from `self.params`
and writes `forward`; `SequenceModel` does the rest (training chunks, fixed-shape batch
forecasts, streaming, checkpoints).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lstm_strategy.models import SequenceModel


@dataclass(frozen=True)
class GRUParams:
    """The GRU's knobs (model.params)."""

    hidden_size: int = 32
    layers: int = 1
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.hidden_size < 1 or self.layers < 1:
            raise ValueError(f"hidden_size={self.hidden_size} and layers={self.layers} must "
                             f"be >= 1.")


class GRUForecaster(SequenceModel):
    """A GRU over the feature rows and a linear head: one forecast per step."""

    Params = GRUParams
    stateful = True

    def __init__(self, n_features: int, config: object) -> None:
        super().__init__(n_features, config)
        p = self.params
        self.gru = nn.GRU(n_features, p.hidden_size, p.layers, batch_first=True,
                          dropout=p.dropout if p.layers > 1 else 0.0)
        self.head = nn.Linear(p.hidden_size, 1)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        # x: [batch, time, features] -> forecasts [batch, time], state [layers, batch, hidden]
        out, state = self.gru(x, state)
        return self.head(out).squeeze(-1), state


@dataclass(frozen=True)
class TCNParams:
    """The TCN's knobs: channels per layer, kernel width, layers (dilations 1, 2, 4, ...)."""

    channels: int = 16
    kernel_size: int = 3
    layers: int = 3


class CausalConv(nn.Module):
    """A 1-D convolution that sees only the past: padded on the left by (k - 1) * dilation."""

    def __init__(self, width_in: int, width_out: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.pad = (kernel - 1) * dilation
        self.conv = nn.Conv1d(width_in, width_out, kernel, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [batch, channels, time] -> [batch, channels, time]
        return self.conv(nn.functional.pad(x, (self.pad, 0)))


class TCNForecaster(SequenceModel):
    """Dilated causal convolutions with residual connections: a window of rows per output."""

    Params = TCNParams
    stateful = False

    def __init__(self, n_features: int, config: object) -> None:
        super().__init__(n_features, config)
        p = self.params
        self.inp = nn.Conv1d(n_features, p.channels, 1)
        self.blocks = nn.ModuleList(CausalConv(p.channels, p.channels, p.kernel_size, 2 ** i)
                                    for i in range(p.layers))
        self.head = nn.Linear(p.channels, 1)

    def receptive_rows(self) -> int:
        p = self.params
        return 1 + (p.kernel_size - 1) * (2 ** p.layers - 1)

    def forward(self, x: torch.Tensor, state: None = None) -> tuple[torch.Tensor, None]:
        # x: [batch, time, features] -> forecasts [batch, time]; no state between calls
        h = self.inp(x.transpose(1, 2))
        for block in self.blocks:
            h = h + torch.relu(block(h))
        return self.head(h.transpose(1, 2)).squeeze(-1), None
