"""The classic model of the literature: the last `window` bars in, one forecast out.

Kept for comparison: each forecast re-reads its whole window, so it costs `window` LSTM
steps a bar where the sequence model costs one. Trained on shuffled mini-batches of
windows; only labels with a full window of rows behind them train.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from .base import LSTMModel, State, TrainingChunk, pad_rows, register
from .kinds import WindowParams

VAL_BATCH = 1024  # windows per validation call


def _windows(x: torch.Tensor, window: int) -> torch.Tensor:
    """All windows of x [rows, features] as [rows - window + 1, window, features]."""
    return x.unfold(0, window, 1).permute(0, 2, 1)  # window i ends at row i + window - 1


@register
class WindowLSTM(LSTMModel):
    """An LSTM over the last `window` bars, forecast from its final output."""

    kind = "window"
    Params = WindowParams

    def forward(self, x: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        # x: [batch, window, features] -> forecasts [batch, 1]; no state between calls
        out, _ = self.lstm(x)
        return self.head(out[:, -1]), None

    def context_rows(self, context_bars: int) -> int:
        return self.params.window - 1

    def training_chunks(self, x: torch.Tensor, labels: torch.Tensor, train: torch.Tensor,
                        config: object, rng: np.random.Generator) -> Iterator[TrainingChunk]:
        window = self.params.window
        if len(x) < window:
            return
        windows = _windows(x, window)
        ends = torch.arange(window - 1, len(x), device=x.device)
        train_idx = (ends[train[window - 1:]] - (window - 1)).cpu().numpy()
        order = rng.permutation(train_idx)
        for start in range(0, len(order), config.batch_size):
            batch = torch.as_tensor(order[start:start + config.batch_size], device=x.device)
            rows = (batch + window - 1).unsqueeze(-1)
            yield TrainingChunk(windows[batch], labels[rows], None, rows, carry=False,
                                has_loss=True)

    @torch.no_grad()
    def validation_loss(self, x: torch.Tensor, labels: torch.Tensor, val: torch.Tensor,
                        loss_fn: nn.Module) -> float:
        window = self.params.window
        if len(x) < window or not val[window - 1:].any():
            return float("nan")
        windows = _windows(x, window)
        ends = torch.arange(window - 1, len(x), device=x.device)
        val_idx = ends[val[window - 1:]] - (window - 1)
        out = torch.cat([self(windows[val_idx[i:i + VAL_BATCH]])[0][:, 0]
                         for i in range(0, len(val_idx), VAL_BATCH)])
        return float(loss_fn(out, labels[val_idx + window - 1]).mean().item())

    def forecast_segment(self, x: torch.Tensor, chunk_bars: int, batch_size: int
                         ) -> torch.Tensor:
        window = self.params.window
        result = torch.full((len(x),), float("nan"), device=x.device)
        if len(x) >= window:
            windows = _windows(x, window)
            outs = [self(pad_rows(windows[i:i + batch_size], batch_size))[0][:, 0]
                    [:min(batch_size, len(windows) - i)]
                    for i in range(0, len(windows), batch_size)]
            result[window - 1:] = torch.cat(outs)
        return result

    def stream_start(self) -> State:
        return deque(maxlen=self.params.window)

    def stream_warm(self, x: torch.Tensor, state: State) -> State:
        state.extend(x)
        return state

    def stream_step(self, x: torch.Tensor, state: State) -> tuple[float, State]:
        state.append(x)
        if len(state) < self.params.window:
            return float("nan"), state
        out, _ = self(torch.stack(tuple(state)).unsqueeze(0))
        return out[0, 0], state
