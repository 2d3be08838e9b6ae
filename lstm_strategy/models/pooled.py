"""One causal sequence LSTM for many assets: shared weights, a state per asset.

Inputs are panels [rows, assets, features] on one calendar. Each asset's row at bar t,
with that asset's learnt embedding appended, steps its own LSTM state (the assets are
the LSTM's batch), and a shared head reads every state. Trained like the sequence model:
the span cut into parallel contiguous streams along time, carried across `bptt`-long
chunks, a loss at every step of every asset whose label is known, none in the first
`burn_in` steps of a cold stream. `mix` is where the graph model joins the assets.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from .base import (
    ForecastModel,
    LSTMModel,
    ModelConfig,
    State,
    TrainingChunk,
    pad_rows,
    register,
)
from .kinds import PooledParams
from .sequence import span_validation_loss, stream_chunks, stream_layout


@register
class PooledLSTM(LSTMModel):
    """Per-asset states of one shared LSTM: output at step t uses inputs at steps <= t."""

    kind = "pooled"
    multi_asset = True
    Params = PooledParams

    def __init__(self, n_features: int, config: ModelConfig, n_assets: int) -> None:
        ForecastModel.__init__(self, n_features, config)
        self.n_assets = n_assets
        p = self.params
        width = p.asset_embedding
        self.embedding = nn.Embedding(n_assets, width) if width else None
        self.lstm = nn.LSTM(n_features + width, p.hidden_size, p.num_layers, batch_first=True,
                            dropout=p.dropout if p.num_layers > 1 else 0.0)
        self.head = nn.Linear(p.hidden_size, 1)

    def mix(self, hidden: torch.Tensor) -> torch.Tensor:
        """Hidden states [batch, assets, steps, hidden] as the head reads them."""
        return hidden

    def forward(self, x: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        # x: [batch, assets, steps, features] -> forecasts [batch, assets, steps]
        batch, assets, steps, _ = x.shape
        if self.embedding is not None:
            codes = self.embedding.weight[None, :, None, :].expand(batch, assets, steps, -1)
            x = torch.cat([x, codes], dim=-1)
        out, state = self.lstm(x.reshape(batch * assets, steps, -1), state)
        hidden = self.mix(out.reshape(batch, assets, steps, -1))
        return self.head(hidden).squeeze(-1), state

    def context_rows(self, context_bars: int) -> int:
        return context_bars

    def training_chunks(self, x: torch.Tensor, labels: torch.Tensor, train: torch.Tensor,
                        config: object, rng: np.random.Generator) -> Iterator[TrainingChunk]:
        # x [rows, assets, features]; labels and train [rows, assets]
        bptt, burn_in = config.bptt, config.burn_in
        layout = stream_layout(train, config, rng)
        if layout is None:
            return
        cut, streams, length = layout
        assets = x.shape[1]
        # [streams, assets, length, ...]: each stream a contiguous stretch of time
        xs = x[cut].reshape(streams, length, assets, -1).transpose(1, 2)
        ls = labels[cut].reshape(streams, length, assets).transpose(1, 2)
        ms = train[cut].reshape(streams, length, assets).transpose(1, 2).float()
        flat = torch.arange(cut.start * assets, cut.stop * assets, device=x.device)
        rows = flat.reshape(streams, length, assets).transpose(1, 2)  # into [rows * assets]
        yield from stream_chunks(xs, ls, ms, rows, bptt, burn_in)

    def validation_loss(self, x: torch.Tensor, labels: torch.Tensor, val: torch.Tensor,
                        loss_fn: nn.Module) -> float:
        return span_validation_loss(self, x, labels, val, loss_fn)

    def forecast_segment(self, x: torch.Tensor, chunk_bars: int, batch_size: int
                         ) -> torch.Tensor:
        # x [rows, assets, features] -> [rows, assets]; every call [1, assets, chunk_bars]
        state = None
        outs = []
        for start in range(0, len(x), chunk_bars):
            chunk = pad_rows(x[start:start + chunk_bars], chunk_bars)
            out, state = self(chunk.transpose(0, 1).unsqueeze(0), state)
            outs.append(out[0, :, :min(chunk_bars, len(x) - start)].T)
        return torch.cat(outs)

    def stream_warm(self, x: torch.Tensor, state: State) -> State:
        _, state = self(x.transpose(0, 1).unsqueeze(0), state)
        return state

    def stream_step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Every asset's raw output [assets] for one bar's rows x [assets, features]."""
        out, state = self(x[None, :, None, :], state)
        return out[0, :, -1], state
