"""A forecaster for bars that arrive one at a time: online features, the walk-forward
schedule run as the bars come, one model step per bar.

Fold k is trained on exactly what the batch walk-forward gives it (`fit_fold_at`: the
complete rows before its retrain bar, the labels known then, seed + k), at the close of
the bar before that retrain bar. In parity mode it trains there and then, so the model
takes over on the retrain bar as in the backtest; otherwise it trains in a background
process while bars keep flowing, and takes over at the first bar after it is ready (the
previous model goes on forecasting meanwhile, and says so).
"""

from __future__ import annotations

import io
import multiprocessing
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..errors import CheckpointError
from ..features import make_target
from ..forecaster import Forecaster, WalkForwardStream, resolve_device
from ..models import ModelConfig, build_model
from ..models.base import steps_on_host
from ..online_features import OnlineFeatures
from ..processes import worker_init
from ..training import Panel, TrainConfig, fit_fold_at

Event = Callable[[str, dict], None]


def _fit(rows: np.ndarray, closes: np.ndarray, index: pd.DatetimeIndex, names: list[str],
         k: int, retrain_pos: int, model_config: ModelConfig, config: TrainConfig,
         device: str, init_state: dict | None, assets: list[str] | None = None,
         sectors: dict | None = None) -> tuple[Forecaster, dict]:
    """Fold k from the bars before `retrain_pos` (rows [bars, features], or [bars, assets,
    features] for a multi-asset model); the forecaster and what it trained on."""
    if assets is None:
        features = pd.DataFrame(rows, index=index, columns=names)
        target = make_target(pd.Series(closes, index=index), config.horizon)
        panel = Panel.from_frames(features, target)
    else:
        panel = Panel.from_assets(
            {a: pd.DataFrame(rows[:, i], index=index, columns=names)
             for i, a in enumerate(assets)},
            {a: make_target(pd.Series(closes[:, i], index=index), config.horizon)
             for i, a in enumerate(assets)}, sectors)
    fit = fit_fold_at(panel, names, index, k, retrain_pos, model_config, config,
                      resolve_device(device), init_state)
    last_label = max(fit.last_label_pos, 0)
    return fit.forecaster, {"fold": k, "train_start": str(index[fit.train_start_pos]),
                            "last_label": str(index[last_label]), "n_train": fit.n_train,
                            "epochs": fit.epochs_run}


def _fit_in_worker(parent: int, conn: object, args: tuple) -> None:
    """A background fold in its own process (one torch thread, ends with its driver)."""
    worker_init(parent)
    forecaster, info = _fit(*args)
    buffer = io.BytesIO()  # bytes, not tensors: torch shares tensors through this process,
    torch.save(forecaster.to_dict(), buffer)  # which ends right after sending them
    conn.send_bytes(buffer.getvalue())
    conn.send((None, info))
    conn.close()


class _Training:
    """A fold training in a spawned process: polled each bar, stopped with the runner."""

    def __init__(self, args: tuple) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, self._child = context.Pipe(duplex=False)
        self.process = context.Process(target=_fit_in_worker,
                                       args=(os.getpid(), self._child, args), daemon=True)
        self.process.start()  # the child end stays open here until the child has it
        self._result: tuple | None = None

    def done(self) -> bool:
        if self._result is None and self._conn.poll():
            blob = torch.load(io.BytesIO(self._conn.recv_bytes()), weights_only=True)
            self._result = (blob, self._conn.recv()[1])
            self.process.join()
            self._child.close()
        if self._result is None and not self.process.is_alive():
            raise RuntimeError(f"background training ended with exit code "
                               f"{self.process.exitcode} before its model was ready")
        return self._result is not None

    def result(self) -> tuple:
        while not self.done():
            self._conn.poll(0.1)
        return self._result

    def cancel(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self._conn.close()
        self._child.close()


class SegmentStream:
    """Forecasts equal to the batch walk-forward's bit for bit, one bar at a time.

    Each bar re-runs the fold's batch forecast (`Forecaster.forecast_rows`, fixed-shape
    calls) from the fold's context start to this bar and keeps the last row: the same
    function on the same rows as the backtest, so the same numbers, at the cost of one
    chunk call per bar. Parity mode uses it for models without a host stepper (pooled,
    LSTM-GNN, window, your own); the same `add`/`step` as `WalkForwardStream`.
    """

    def __init__(self, context_bars: int) -> None:
        self._context = context_bars
        self._switches: list[tuple[pd.Timestamp, Forecaster]] = []
        self._next = 0
        self._complete: list[np.ndarray] = []
        self._forecaster: Forecaster | None = None
        self._start = 0

    def add(self, date: pd.Timestamp, forecaster: Forecaster) -> None:
        self._switches.append((pd.Timestamp(date), forecaster))

    def step(self, date: pd.Timestamp, row: np.ndarray) -> float | np.ndarray:
        while self._next < len(self._switches) and date >= self._switches[self._next][0]:
            self._forecaster = self._switches[self._next][1]
            context = self._forecaster.model.context_rows(self._context)
            del self._complete[:max(0, len(self._complete) - context)]  # bounded memory
            self._start = 0
            self._next += 1
        nan = float("nan") if row.ndim == 1 else np.full(len(row), np.nan)
        if not bool(np.isfinite(row).all()):
            return nan
        self._complete.append(row)
        if self._forecaster is None:
            return nan
        out = self._forecaster.forecast_rows(np.array(self._complete[self._start:]))[-1]
        return float(out) if row.ndim == 1 else out


@dataclass
class _Journaled:
    """A background fold of a resumed run: it takes over at the journaled bar position."""

    position: int
    path: Path


class LiveForecaster:
    """`on_bar(when, open, high, low, close, volume)` -> the forecast for that bar; for a
    multi-asset model (pooled, LSTM-GNN) `on_step({ticker: bar})` -> {ticker: forecast},
    every asset advanced in one model call per bar.

    `features` computes the row (an `OnlineFeatures`, or {ticker: OnlineFeatures} for a
    multi-asset model, `sectors` for its graph), the walk-forward of `model_config`
    and `train_config` supplies the models. `checkpoints`: a folder where each fold's model
    is saved, and loaded from on a rerun instead of trained again (a resumed runner).
    `background`: train in a process beside the bars (live); False trains at the bar
    (parity with the backtest). `on_event(kind, details)` hears of swaps and late models.
    `replay_swaps` ({fold: bar position}): where a journaled run's background folds took
    over; a resumed run swaps them in there, from their checkpoints, as it happened, and
    no other background model takes over before its `journaled_bars` are replayed.
    """

    def __init__(self, features: OnlineFeatures, model_config: ModelConfig,
                 train_config: TrainConfig, *, device: str = "cpu",
                 checkpoints: str | Path | None = None, background: bool = False,
                 on_event: Event | None = None, label: str = "",
                 replay_swaps: dict[int, int] | None = None, journaled_bars: int = 0,
                 sectors: dict | None = None) -> None:
        self.model_config, self.config = model_config, train_config
        self.device, self.label, self.sectors = device, label, sectors
        self.assets = list(features) if isinstance(features, dict) else None
        self.features = features if self.assets is not None else {label: features}
        self.names = list(next(iter(self.features.values())).columns)
        self.checkpoints = Path(checkpoints) if checkpoints else None
        self.background = background
        self.on_event = on_event or (lambda kind, details: None)
        model = build_model(len(self.names), model_config, len(self.features))
        context = model.context_rows(train_config.context_bars)
        if background or steps_on_host(model):  # one step a bar
            self.stream = WalkForwardStream([], train_config.context_bars, buffer_rows=context)
        else:  # parity without a host stepper: the batch's own numbers (SegmentStream)
            self.stream = SegmentStream(train_config.context_bars)
        self.rows: list[np.ndarray] = []
        self.closes: list[float] = []
        self.index: list[pd.Timestamp] = []
        self.first_complete: int | None = None
        self.next_fold = 0
        self.folds: list[dict] = []
        self.last_row: np.ndarray | None = None
        self.last_forecast: float | np.ndarray = float("nan")
        self._init_state: dict | None = None
        self._pending: tuple | None = None  # (fold, retrain position, future)
        self._late_said: int | None = None
        self.replay_swaps = dict(replay_swaps or {})
        self.journaled_bars = journaled_bars

    # -- the schedule --------------------------------------------------------------
    def _retrain_pos(self, k: int) -> int | None:
        if self.first_complete is None:
            return None
        return self.first_complete + self.config.min_train_bars + k * self.config.step

    def _checkpoint(self, k: int, retrain_pos: int) -> Path | None:
        if self.checkpoints is None:
            return None
        return self.checkpoints / f"{self.label or 'model'}_fold{k:03d}_bar{retrain_pos}.pt"

    def _args(self, k: int, retrain_pos: int) -> tuple:
        index = pd.DatetimeIndex(self.index[:retrain_pos])  # a late start sees no more
        return (np.array(self.rows[:retrain_pos]), np.array(self.closes[:retrain_pos]), index,
                self.names, k, retrain_pos, self.model_config, self.config, self.device,
                self._init_state, self.assets, self.sectors)

    def _train(self, k: int, retrain_pos: int) -> None:
        """Fold k, due at bar `retrain_pos` (the next bar): trained now, or started."""
        path = self._checkpoint(k, retrain_pos)
        if self.background and k in self.replay_swaps and path is not None and path.exists():
            self._pending = (k, retrain_pos, _Journaled(self.replay_swaps.pop(k), path))
            self.on_event("train_started", {"fold": k, "retrain_bar": retrain_pos,
                                            "at": str(self.index[-1]), "ticker": self.label})
            return
        if path is not None and path.exists():
            try:
                forecaster = Forecaster.load(path, self.device)
                forecaster.check_features(self.names)
            except CheckpointError:
                forecaster = None  # a damaged file: train again
            if forecaster is not None:
                info = {"fold": k, "checkpoint": str(path), "loaded": True}
                self._ready(k, retrain_pos, forecaster, info)
                return
        if not self.background:
            forecaster, info = _fit(*self._args(k, retrain_pos))
            self._ready(k, retrain_pos, forecaster, info)
            return
        self._pending = (k, retrain_pos, _Training(self._args(k, retrain_pos)))
        self.on_event("train_started", {"fold": k, "retrain_bar": retrain_pos,
                                        "at": str(self.index[-1]), "ticker": self.label})

    def _ready(self, k: int, retrain_pos: int, forecaster: Forecaster, info: dict) -> None:
        path = self._checkpoint(k, retrain_pos)
        if path is not None and not path.exists():
            forecaster.save(path, fold=k, retrain_bar=retrain_pos)
        if self.config.warm_start:
            self._init_state = {n: t.clone() for n, t in forecaster.model.state_dict().items()}
        # it takes over at the first bar after the last one seen
        takeover = self.index[-1] + pd.Timedelta(1, "ns")
        self.stream.add(takeover, forecaster)
        swap = {**info, "fold": k, "retrain_bar": retrain_pos, "ticker": self.label,
                "position": len(self.index),
                "ready_after": str(self.index[-1]),
                "checkpoint": str(path) if path is not None else None}
        self.folds.append(swap)
        self.on_event("swap", swap)

    def _collect(self) -> None:
        """A model trained in the background that is ready takes over at this bar."""
        if self._pending is None:
            return
        k, retrain_pos, future = self._pending
        if isinstance(future, _Journaled):
            if len(self.index) < future.position:
                return
            self._pending = None
            self._ready(k, retrain_pos, Forecaster.load(future.path, self.device),
                        {"checkpoint": str(future.path), "loaded": True})
            return
        if not future.done() or len(self.index) < self.journaled_bars:
            return
        self._pending = None
        blob, info = future.result()
        self._ready(k, retrain_pos, Forecaster.from_dict(blob, self.device), info)

    def wait(self) -> None:
        """Block until a model in training is ready (used at the end of a replay)."""
        if self._pending is not None and not isinstance(self._pending[2], _Journaled):
            self._pending[2].result()

    # -- bars ----------------------------------------------------------------------
    def on_bar(self, when: pd.Timestamp, open_: float, high: float, low: float,
               close: float, volume: float) -> float:
        """The forecast for this bar, made at its close from the bars so far."""
        when = pd.Timestamp(when)
        row = self.features[self.label].update(when, open_, high, low, close, volume)
        return self._advance(when, row, float(close))

    def on_step(self, bars: dict[str, tuple]) -> dict[str, float]:
        """Every asset's forecast for this bar ({ticker: (when, o, h, l, c, v)} in, one
        model call for all of them); the assets share one calendar."""
        if set(bars) != set(self.features):
            raise ValueError(f"on_step needs a bar of every asset {sorted(self.features)}; "
                             f"got {sorted(bars)}.")
        when = pd.Timestamp(next(iter(bars.values()))[0])
        rows = np.stack([self.features[t].update(*bars[t]) for t in self.features])
        closes = np.array([bars[t][4] for t in self.features], dtype=float)
        out = np.asarray(self._advance(when, rows, closes), dtype=float).reshape(-1)
        return dict(zip(self.features, out.tolist(), strict=True))

    def _advance(self, when: pd.Timestamp, row: np.ndarray, close: float | np.ndarray
                 ) -> float | np.ndarray:
        self.last_row = row
        self._collect()
        position = len(self.index)
        due = self._retrain_pos(self.next_fold - 1) if self.next_fold else None
        if (self._pending is not None and due is not None and position >= due
                and self._late_said != self._pending[0]):
            self._late_said = self._pending[0]
            self.on_event("late_model", {"fold": self._pending[0], "bar": str(when),
                                         "kept_fold": self.next_fold - 2,
                                         "ticker": self.label})
        forecast = self.last_forecast = self.stream.step(when, row)
        self.index.append(when)
        self.rows.append(row)
        self.closes.append(close)
        if self.first_complete is None and bool(np.isfinite(row).all()):
            self.first_complete = position
        next_pos = self._retrain_pos(self.next_fold)
        if next_pos is not None and position + 1 >= next_pos and self._pending is None:
            self.next_fold += 1
            self._train(self.next_fold - 1, next_pos)
        return forecast

    def row_of(self, ticker: str) -> np.ndarray | None:
        """The last bar's feature row of `ticker` (None before the first bar)."""
        if self.last_row is None or self.assets is None:
            return self.last_row
        return self.last_row[self.assets.index(ticker)]

    def forecast_of(self, ticker: str) -> float:
        """The last bar's forecast of `ticker`."""
        if self.assets is None:
            return float(self.last_forecast)
        last = np.asarray(self.last_forecast, dtype=float).reshape(-1)
        return float(last[self.assets.index(ticker)]) if last.size > 1 else float(last[0])

    def close(self) -> None:
        """Stop a fold still training in the background (its model would come too late)."""
        if self._pending is not None and isinstance(self._pending[2], _Training):
            self._pending[2].cancel()
            self._pending = None
