"""The default model: a causal sequence LSTM that carries its state across bars.

It reads the feature sequence and emits a forecast at every step, so a forecast per bar
costs one LSTM step whatever the lookback. Trained with a loss at every step: the span is
cut into parallel contiguous streams, each carried across `bptt`-long chunks (truncated
back-propagation), the first `burn_in` steps of a cold stream carrying no loss.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from .base import (
    CHUNK_BARS,
    ForecastModel,
    LSTMModel,
    State,
    TrainingChunk,
    pad_rows,
    register,
)


def masked_mean(loss: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `loss` weighted by `mask` (0 when nothing is masked in)."""
    return (loss * mask).sum() / mask.sum().clamp_min(1.0)


@torch.no_grad()
def span_validation_loss(model: ForecastModel, x: torch.Tensor, labels: torch.Tensor,
                         val: torch.Tensor, loss_fn: nn.Module) -> float:
    """A recurrent model's loss on the `val` labels of a whole span, run as its forecasts
    are (CHUNK_BARS-long calls carrying the state); NaN without validation labels."""
    if not val.any():
        return float("nan")
    out = model.forecast_segment(x, CHUNK_BARS, CHUNK_BARS)
    return float(masked_mean(loss_fn(out, labels), val.float()).item())


def stream_layout(train: torch.Tensor, config: object, rng: np.random.Generator
                  ) -> tuple[slice, int, int] | None:
    """How an epoch cuts a span into parallel contiguous streams: the rows used (from a
    random offset below `bptt`, so chunk edges move between epochs), the number of
    streams and their length; None when a stream would not outlast the burn-in.
    `train` marks usable labels by row (first dimension)."""
    used = train.reshape(len(train), -1).any(dim=1)
    span = int(used.nonzero().max().item()) + 1 if used.any() else 0
    streams = max(1, min(config.batch_streams, span // max(config.bptt + config.burn_in, 1)))
    offset = int(rng.integers(0, max(1, min(config.bptt, span // (4 * streams) + 1))))
    length = (span - offset) // streams
    if length <= config.burn_in:
        return None
    return slice(offset, offset + streams * length), streams, length


def stream_views(x: torch.Tensor, labels: torch.Tensor, train: torch.Tensor, config: object,
                 rng: np.random.Generator) -> tuple[torch.Tensor, ...] | None:
    """A span as parallel contiguous streams (see `stream_layout`): inputs [streams, steps,
    features], labels, mask and row numbers [streams, steps]; None when too short."""
    layout = stream_layout(train, config, rng)
    if layout is None:
        return None
    cut, streams, length = layout
    rows = torch.arange(cut.start, cut.stop, device=x.device).reshape(streams, length)
    return (x[cut].reshape(streams, length, -1), labels[cut].reshape(streams, length),
            train[cut].reshape(streams, length).float(), rows)


def stateful_segment(model: ForecastModel, x: torch.Tensor, chunk_bars: int) -> torch.Tensor:
    """Outputs [rows] of a recurrent model over consecutive rows from a cold start, in
    `chunk_bars`-long calls of one shape carrying the state (the last one padded)."""
    state = None
    outs = []
    for start in range(0, len(x), chunk_bars):
        chunk = pad_rows(x[start:start + chunk_bars], chunk_bars)
        out, state = model(chunk.unsqueeze(0), state)
        outs.append(out[0, :min(chunk_bars, len(x) - start)])
    return torch.cat(outs)


def stream_chunks(xs: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor,
                  rows: torch.Tensor, bptt: int, burn_in: int) -> Iterator[TrainingChunk]:
    """Cut streams along time (the last axis of labels, mask and rows; the one before the
    features in xs) into `bptt`-long chunks; the first `burn_in` steps carry no loss."""
    mask[..., :burn_in] = 0.0
    starts = range(0, mask.shape[-1], bptt)
    # which chunks carry any loss, fetched once (no device sync per chunk)
    active = torch.stack([mask[..., i:i + bptt].sum() for i in starts]).gt(0).tolist()
    for start, has_loss in zip(starts, active, strict=True):
        chunk = slice(start, start + bptt)
        yield TrainingChunk(xs[..., chunk, :], labels[..., chunk], mask[..., chunk],
                            rows[..., chunk], carry=True, has_loss=has_loss)


@register
class SequenceLSTM(LSTMModel):
    """Causal LSTM: output at step t depends only on inputs at steps <= t."""

    kind = "sequence"

    def forward(self, x: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        # x: [batch, time, features] -> forecasts [batch, time], state ([layers, batch, hidden],)*2
        out, state = self.lstm(x, state)
        return self.head(out).squeeze(-1), state

    def context_rows(self, context_bars: int) -> int:
        return context_bars

    def training_chunks(self, x: torch.Tensor, labels: torch.Tensor, train: torch.Tensor,
                        config: object, rng: np.random.Generator) -> Iterator[TrainingChunk]:
        views = stream_views(x, labels, train, config, rng)
        if views is not None:
            yield from stream_chunks(*views, config.bptt, config.burn_in)

    def validation_loss(self, x: torch.Tensor, labels: torch.Tensor, val: torch.Tensor,
                        loss_fn: nn.Module) -> float:
        return span_validation_loss(self, x, labels, val, loss_fn)

    def forecast_segment(self, x: torch.Tensor, chunk_bars: int, batch_size: int
                         ) -> torch.Tensor:
        return stateful_segment(self, x, chunk_bars)

    def stream_warm(self, x: torch.Tensor, state: State) -> State:
        _, state = self(x.unsqueeze(0), state)
        return state

    def stream_step(self, x: torch.Tensor, state: State) -> tuple[float, State]:
        out, state = self(x[None, None, :], state)
        return out[0, -1], state

    def numpy_stepper(self) -> NumpyLSTMStep:
        return NumpyLSTMStep(self)


class NumpyLSTMStep:
    """One step of a trained SequenceLSTM in NumPy, for streaming on the host (any device).

    Written by hand because a batch-1, one-step call through PyTorch costs about 40 us of
    dispatch per layer on a small CPU (nn.LSTM about 300 us), against a few us for the
    same arithmetic in NumPy. Same weights, same gate order (i, f, g, o) as nn.LSTM.
    The state is a list of per-layer (h, c) float64 arrays.
    """

    def __init__(self, model: SequenceLSTM) -> None:
        lstm = model.lstm
        self.layers = []
        for layer in range(lstm.num_layers):
            weight = torch.cat([getattr(lstm, f"weight_ih_l{layer}"),
                                getattr(lstm, f"weight_hh_l{layer}")], dim=1)
            bias = getattr(lstm, f"bias_ih_l{layer}") + getattr(lstm, f"bias_hh_l{layer}")
            self.layers.append((weight.detach().cpu().double().numpy(),
                                bias.detach().cpu().double().numpy()))
        self.head_w = model.head.weight.detach().cpu().double().numpy()[0]
        self.head_b = float(model.head.bias.detach().cpu().double().numpy()[0])
        self.hidden = lstm.hidden_size

    def start(self) -> list[tuple[np.ndarray, np.ndarray]]:
        zeros = np.zeros(self.hidden)
        return [(zeros, zeros) for _ in self.layers]

    @staticmethod
    def to_torch(state: list | None, device: torch.device | str = "cpu") -> State:
        """This stepper's state as nn.LSTM's (h, c) tensors on `device` (None stays None)."""
        if state is None:
            return None
        return tuple(torch.as_tensor(np.stack([s[k] for s in state])[:, None, :],
                                     dtype=torch.float32, device=device) for k in (0, 1))

    @staticmethod
    def from_torch(state: State) -> list | None:
        """nn.LSTM's (h, c) tensors as this stepper's state."""
        if state is None:
            return None
        h, c = (s[:, 0, :].double().cpu().numpy() for s in state)
        return [(h[layer], c[layer]) for layer in range(len(h))]

    def __call__(self, x: np.ndarray, state: list[tuple[np.ndarray, np.ndarray]]) -> float:
        """Advance `state` (per layer (h, c), updated in place) by input `x`; returns the raw output."""
        hidden = self.hidden
        for layer, (weight, bias) in enumerate(self.layers):
            h, c = state[layer]
            gates = weight @ np.concatenate((x, h)) + bias
            sig = 1.0 / (1.0 + np.exp(-gates))  # i, f, o use it; the g block is recomputed
            c = sig[hidden:2 * hidden] * c + sig[:hidden] * np.tanh(gates[2 * hidden:3 * hidden])
            h = sig[3 * hidden:] * np.tanh(c)
            state[layer] = (h, c)
            x = h
        return float(self.head_w @ x + self.head_b)
