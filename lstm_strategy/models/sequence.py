"""The default model: a causal sequence LSTM that carries its state across bars.

It reads the feature sequence and emits a forecast at every step, so a forecast per bar
costs one LSTM step whatever the lookback. Trained with a loss at every step: the span is
cut into parallel contiguous streams, each carried across `bptt`-long chunks (truncated
back-propagation), the first `burn_in` steps of a cold stream carrying no loss.
"""

from __future__ import annotations

import functools
import math
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


VALIDATION_ROWS = 2**18  # rows x assets a validation call takes at most


@torch.no_grad()
def span_validation_loss(model: ForecastModel, x: torch.Tensor, labels: torch.Tensor,
                         val: torch.Tensor, loss_fn: nn.Module) -> float:
    """A recurrent model's loss on the `val` labels of a span (the validation tail and its
    context) from a cold start, in one call: the loss is not a forecast, so it needs
    no fixed call shape, and padding to CHUNK_BARS calls cost up to a sixth more. A span
    of more than VALIDATION_ROWS rows x assets goes in calls of that size, the state
    carried (500 assets x 5,000 bars in one call held 1 GB of states). NaN without
    validation labels."""
    if not val.any():
        return float("nan")
    assets = x.shape[1] if x.dim() == 3 else 1
    bars = max(VALIDATION_ROWS // assets, CHUNK_BARS)
    out = model.forecast_segment(x, min(len(x), bars), min(len(x), bars))
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

    def host_stepper(self, mean: np.ndarray, std: np.ndarray, target_std: float,
                     direction: bool) -> HostLSTMStep:
        return HostLSTMStep(self, mean, std, target_std, direction)


class HostLSTMStep:
    """One step of a trained SequenceLSTM on the host, raw row in, forecast out.

    Written by hand because a batch-1, one-step call through PyTorch costs about 40 us of
    dispatch per layer on a small CPU (nn.LSTM about 300 us) and NumPy's dozen small calls
    26-49 us, against 2-2.5 us of arithmetic: the step is one compiled call
    (`_hoststep.lstm_step`: scaling, finite check, cell and head fused), or the NumPy
    cell where Numba is not installed. Same weights, same gate order (i, f, g, o) as
    nn.LSTM, in float64. It owns its state, one array [2 (h, c), layers, hidden].
    """

    def __init__(self, model: SequenceLSTM, mean: np.ndarray, std: np.ndarray,
                 target_std: float, direction: bool) -> None:
        from . import _hoststep  # Numba loads with the first stream, not with the package

        lstm = model.lstm
        weights, biases = [], []
        for layer in range(lstm.num_layers):
            weight = torch.cat([getattr(lstm, f"weight_ih_l{layer}"),
                                getattr(lstm, f"weight_hh_l{layer}")], dim=1)
            bias = getattr(lstm, f"bias_ih_l{layer}") + getattr(lstm, f"bias_hh_l{layer}")
            weights.append(weight.detach().cpu().double().numpy())
            biases.append(bias.detach().cpu().double().numpy())
        hidden = lstm.hidden_size
        self.weights = weights  # [4 hidden, inputs + hidden] per layer, for the NumPy cell
        self.bias = np.stack(biases)
        self.head_w = model.head.weight.detach().cpu().double().numpy()[0].copy()
        self.head_b = float(model.head.bias.detach().cpu().double().numpy()[0])
        self.mean = np.ascontiguousarray(mean, dtype=np.float64)
        self.std = np.ascontiguousarray(std, dtype=np.float64)
        self.target_std, self.direction = float(target_std), bool(direction)
        self.state = np.zeros((2, lstm.num_layers, hidden))
        if _hoststep.COMPILED:
            w0 = np.ascontiguousarray(weights[0].T)
            wr = (np.ascontiguousarray(np.stack([w.T for w in weights[1:]]))
                  if len(weights) > 1 else _hoststep.empty_wr(hidden))
            scratch = np.zeros(max(len(self.mean), hidden) + hidden), np.zeros(4 * hidden)
            # step(row) -> forecast: the whole per-bar call, no Python frame of ours
            self.step = functools.partial(
                _hoststep.lstm_step, self.mean, self.std, w0, wr, self.bias, self.head_w,
                self.head_b, self.target_std, self.direction, *scratch, self.state)
        else:  # pragma: no cover - exercised by bench/bench_stream.py's NumPy reference
            self.step = self.numpy_step

    def reset(self) -> None:
        self.state[:] = 0.0

    def to_torch(self, device: torch.device | str = "cpu") -> State:
        """The state as nn.LSTM's (h, c) tensors on `device` (None, torch's own zero start,
        while it is all zeros)."""
        if not self.state.any():
            return None
        return tuple(torch.as_tensor(self.state[k][:, None, :], dtype=torch.float32,
                                     device=device) for k in (0, 1))

    def load_torch(self, state: State) -> None:
        """Take nn.LSTM's (h, c) tensors as the state."""
        for k, tensor in enumerate(state):
            self.state[k] = tensor[:, 0, :].double().cpu().numpy()

    def numpy_step(self, row: np.ndarray) -> float:
        """`step` in NumPy, where Numba is not installed (and the benchmark's reference): the
        forecast for raw feature `row` [features] (float64), advancing the state; NaN
        (state kept) when the row is incomplete."""
        if not np.isfinite(row).all():
            return float("nan")
        x = (row - self.mean) / self.std
        hidden, state = self.hidden, self.state
        for layer, weight in enumerate(self.weights):
            gates = weight @ np.concatenate((x, state[0, layer])) + self.bias[layer]
            sig = 1.0 / (1.0 + np.exp(-gates))  # i, f, o use it; the g block is recomputed
            c = sig[hidden:2 * hidden] * state[1, layer] + sig[:hidden] * np.tanh(
                gates[2 * hidden:3 * hidden])
            state[1, layer] = c
            state[0, layer] = x = sig[3 * hidden:] * np.tanh(c)
        out = float(self.head_w @ x + self.head_b)
        return 1.0 / (1.0 + math.exp(-out)) if self.direction else out * self.target_std

    @property
    def hidden(self) -> int:
        return self.state.shape[2]
