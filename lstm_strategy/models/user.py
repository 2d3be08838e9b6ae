"""`SequenceModel`: the base class for a model of your own, a plain sequence module.

Write `__init__` (call `super().__init__(n_features, config)`, then build your layers,
reading your knobs from `self.params`) and `forward`; the base class gives the rest of
`ForecastModel` (training chunks, validation, fixed-shape segment forecasts, streaming):

```python
@dataclass(frozen=True)
class GRUParams:
    hidden_size: int = 32
    layers: int = 1

class MyGRU(SequenceModel):
    Params = GRUParams  # model.params in a config file, checked against this dataclass

    def __init__(self, n_features, config):
        super().__init__(n_features, config)
        self.gru = nn.GRU(n_features, self.params.hidden_size, self.params.layers,
                          batch_first=True)
        self.head = nn.Linear(self.params.hidden_size, 1)

    def forward(self, x, state=None):
        # x: [batch, time, features] -> ([batch, time], state)
        out, state = self.gru(x, state)
        return self.head(out).squeeze(-1), state
```

The causal rule: the output at step t may depend on inputs at steps <= t only (no
bidirectional layers, no centred windows, no statistics over the whole input). Two ways
to carry history, chosen by `stateful`:

- `stateful = True` (RNNs): `forward` returns the state to continue from; training cuts a
  span into parallel streams carried across `bptt`-long chunks (truncated BPTT), a
  forecast per bar costs one step.
- `stateful = False` (TCN, windowed attention): the output at t depends on the last
  `receptive_rows()` rows only; `forward(x, None)` returns `(outputs, None)`. Every call
  then carries that many rows of history before the rows it scores, streaming keeps a
  rolling window of them, and `lstm-backtest audit` checks that the claim holds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from .base import ForecastModel, State, TrainingChunk, pad_rows
from .sequence import span_validation_loss, stateful_segment, stream_chunks, stream_views


class SequenceModel(ForecastModel):
    """A sequence module in, a complete forecasting model out (see the module docstring).

    Subclasses implement `forward(x [batch, time, features], state) -> (out [batch,
    time], state)`; windowed ones (`stateful = False`) also `receptive_rows()`.
    """

    stateful: ClassVar[bool] = True

    def receptive_rows(self) -> int:
        """How many rows (this one included) an output reads; windowed models only."""
        raise NotImplementedError(f"{type(self).__name__} sets stateful = False, so it must "
                                  f"say how many rows an output reads: receptive_rows().")

    def _lead(self) -> int:
        return 0 if self.stateful else self.receptive_rows() - 1

    def context_rows(self, context_bars: int) -> int:
        return context_bars if self.stateful else self._lead()

    def training_chunks(self, x: torch.Tensor, labels: torch.Tensor, train: torch.Tensor,
                        config: object, rng: np.random.Generator) -> Iterator[TrainingChunk]:
        lead = self._lead()
        burn_in = config.burn_in if self.stateful else max(config.burn_in, lead)
        views = stream_views(x, labels, train, config, rng)
        if views is None:
            return
        if self.stateful:
            yield from stream_chunks(*views, config.bptt, burn_in)
            return
        xs, ls, ms, rows = views
        length = ms.shape[1]
        ms[:, :burn_in] = 0.0
        for start in range(0, length, config.bptt):
            first = max(0, start - lead)  # history rows the chunk's outputs read
            part = slice(first, start + config.bptt)
            mask = ms[:, part].clone()
            mask[:, :start - first] = 0.0  # the history rows themselves score nothing
            if not mask.any():
                continue
            yield TrainingChunk(xs[:, part], ls[:, part], mask, rows[:, part], carry=False,
                                has_loss=True)

    def validation_loss(self, x: torch.Tensor, labels: torch.Tensor, val: torch.Tensor,
                        loss_fn: nn.Module) -> float:
        return span_validation_loss(self, x, labels, val, loss_fn)

    def forecast_segment(self, x: torch.Tensor, chunk_bars: int, batch_size: int
                         ) -> torch.Tensor:
        if self.stateful:
            return stateful_segment(self, x, chunk_bars)
        outs = []
        lead = self._lead()
        history = torch.cat([x.new_zeros((lead, x.shape[1])), x])  # one shape for every call
        for start in range(0, len(x), chunk_bars):
            call = pad_rows(history[start:start + lead + chunk_bars], lead + chunk_bars)
            out, _ = self(call.unsqueeze(0), None)
            outs.append(out[0, lead:lead + min(chunk_bars, len(x) - start)])
        result = torch.cat(outs)
        result[:min(lead, len(result))] = float("nan")  # too little history yet
        return result

    def stream_start(self) -> State:
        return None if self.stateful else deque(maxlen=self.receptive_rows())

    def stream_warm(self, x: torch.Tensor, state: State) -> State:
        if not self.stateful:
            state.extend(x)
            return state
        _, state = self(x.unsqueeze(0), state)
        return state

    def stream_step(self, x: torch.Tensor, state: State) -> tuple[float, State]:
        if self.stateful:
            out, state = self(x[None, None, :], state)
            return out[0, -1], state
        state.append(x)
        if len(state) < state.maxlen:
            return float("nan"), state
        out, _ = self(torch.stack(tuple(state)).unsqueeze(0), None)
        return out[0, -1], state
