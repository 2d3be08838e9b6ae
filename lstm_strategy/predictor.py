"""Device-resident forecasts from trained models: batch (one pass) or streaming (one step a bar).

A `Forecaster` is one trained model with the constants that turn raw feature rows into
its inputs (feature names and order, scaler) and its outputs back into forecasts. Model,
scaler and recurrent state live on the chosen device; a whole segment goes over in one
transfer each way, a streaming step moves one row in and one number out.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import __version__
from .model import ModelConfig, build_model

CHECKPOINT_FORMAT = 1
FORECAST_CHUNK_BARS = 256  # LSTM steps per batch-forecast call (the shape every call has)


class CheckpointError(ValueError):
    """A checkpoint that cannot serve this data or this version of the package."""


class DeviceError(ValueError):
    """A device that was asked for but is not there."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """`auto` picks CUDA, then Apple's MPS, then the CPU; anything else is taken as told."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device not in ("cpu", "cuda", "mps") and not device.startswith("cuda:"):
        raise DeviceError(f"device={device!r}; use auto, cpu, cuda, cuda:N or mps.")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError("device=cuda asked for, but PyTorch sees no CUDA GPU here; use "
                          "--device auto or cpu.")
    if device == "mps" and not (getattr(torch.backends, "mps", None)
                                and torch.backends.mps.is_available()):
        raise DeviceError("device=mps asked for, but PyTorch sees no Apple GPU here; use "
                          "--device auto or cpu.")
    return torch.device(device)


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with `threads` torch CPU threads (0: torch's default), then restore.

    On a shared or busy machine torch's default (one thread per core) can be several
    times slower than one thread (OpenMP threads spinning against other processes; see
    BENCHMARKS.md), so experiments default to one.
    """
    before = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def one_thread_per_worker() -> None:
    """In a worker process (a pool, backtrader's optstrategy), give torch one thread."""
    if multiprocessing.parent_process() is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)


class Forecaster:
    """One trained model plus its scaler: raw feature rows in, forecasts out."""

    def __init__(
        self,
        model: torch.nn.Module,
        model_config: ModelConfig,
        feature_names: Sequence[str],
        mean: np.ndarray,
        std: np.ndarray,
        target_std: float,
        horizon: int,
        device: str | torch.device = "cpu",
    ) -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.model_config = model_config
        self.feature_names = tuple(feature_names)
        self.horizon = int(horizon)
        self.target_std = float(target_std)
        self._mean = torch.as_tensor(np.asarray(mean, dtype=np.float32), device=self.device)
        self._std = torch.as_tensor(np.asarray(std, dtype=np.float32), device=self.device)

    @property
    def mean(self) -> np.ndarray:
        return self._mean.cpu().numpy()

    @property
    def std(self) -> np.ndarray:
        return self._std.cpu().numpy()

    @property
    def lookback(self) -> int:
        """Rows a window model needs before its first forecast (1 for the sequence model)."""
        return self.model_config.window if self.model_config.kind == "window" else 1

    def _output(self, raw: torch.Tensor) -> torch.Tensor:
        if self.model_config.head == "direction":
            return torch.sigmoid(raw)
        return raw * self.target_std

    def _inputs(self, rows: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(np.ascontiguousarray(rows, dtype=np.float32), device=self.device)
        return (x - self._mean) / self._std

    @torch.no_grad()
    def forecast_rows(self, rows: np.ndarray, batch_size: int = 256,
                      chunk_bars: int = FORECAST_CHUNK_BARS) -> np.ndarray:
        """Forecasts for consecutive, complete raw rows [time, features] on the device.

        The sequence model starts from a cold state at the first row; the window model
        returns NaN until it has `window` rows. Every model call has one fixed shape
        (`chunk_bars` steps, or `batch_size` windows; the last call is padded), so a
        forecast never depends on how many rows follow it: a GEMM's float rounding can
        depend on its row count (tail blocks), and that would break the truncation rule.
        """
        if len(rows) == 0:
            return np.empty(0)
        x = self._inputs(rows)
        # float64 only on the host: some devices (MPS) have no float64
        if self.model_config.kind == "sequence":
            state = None
            outs = []
            for start in range(0, len(x), chunk_bars):
                chunk = _pad_rows(x[start:start + chunk_bars], chunk_bars)
                out, state = self.model(chunk.unsqueeze(0), state)
                outs.append(out[0, :min(chunk_bars, len(x) - start)])
            return self._output(torch.cat(outs)).cpu().double().numpy()
        window = self.model_config.window
        result = np.full(len(rows), np.nan)
        if len(rows) >= window:
            windows = x.unfold(0, window, 1).permute(0, 2, 1)  # [n, window, features]
            outs = [self.model(_pad_rows(windows[i:i + batch_size], batch_size))
                    [:min(batch_size, len(windows) - i)]
                    for i in range(0, len(windows), batch_size)]
            result[window - 1:] = self._output(torch.cat(outs)).cpu().double().numpy()
        return result

    def check_features(self, columns: Sequence[str]) -> None:
        """Raise unless `columns` are exactly the features this model was trained on, in order."""
        columns = tuple(str(c) for c in columns)
        if columns == self.feature_names:
            return
        missing = [c for c in self.feature_names if c not in columns]
        extra = [c for c in columns if c not in self.feature_names]
        detail = (f"missing {missing}" if missing else "") + (
            ("; " if missing else "") + f"unexpected {extra}" if extra else "")
        raise CheckpointError(
            f"feature mismatch: the model was trained on {len(self.feature_names)} features "
            f"{list(self.feature_names)}; got {len(columns)} ({detail or 'same names, other order'}). "
            f"Build features with the same FeatureConfig and exogenous inputs.")

    def predict(self, features: pd.DataFrame) -> pd.Series:
        """Batch forecasts for a feature frame; rows with a NaN feature get NaN and are skipped."""
        self.check_features(features.columns)
        values = features.to_numpy(dtype=np.float64)
        complete = np.isfinite(values).all(axis=1)
        out = np.full(len(features), np.nan)
        out[complete] = self.forecast_rows(values[complete])
        return pd.Series(out, index=features.index, name="forecast")

    def stream(self) -> ForecastStream:
        """A streaming view: feed one row per bar, get that bar's forecast."""
        return ForecastStream(self)

    def to_dict(self) -> dict:
        """Everything needed to rebuild this forecaster, as tensors and plain values."""
        return {
            "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "model_config": asdict(self.model_config),
            "feature_names": list(self.feature_names),
            "mean": self._mean.cpu(),
            "std": self._std.cpu(),
            "target_std": self.target_std,
            "horizon": self.horizon,
        }

    @classmethod
    def from_dict(cls, blob: dict, device: str | torch.device = "cpu") -> Forecaster:
        config = ModelConfig(**blob["model_config"])
        names = list(blob["feature_names"])
        model = build_model(len(names), config)
        model.load_state_dict(blob["state_dict"])
        return cls(model, config, names, blob["mean"].numpy(), blob["std"].numpy(),
                   blob["target_std"], blob["horizon"], device)

    def save(self, path: str | Path, **meta: object) -> None:
        """Write a checkpoint (tensors and plain values only, safe to load)."""
        save_checkpoint(path, {"kind": "forecaster", "forecaster": self.to_dict(), "meta": meta})

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu",
             feature_names: Sequence[str] | None = None) -> Forecaster:
        """Read a checkpoint written by `save`; checks the version and, if given, the features."""
        blob = load_checkpoint(path, "forecaster")
        forecaster = cls.from_dict(blob["forecaster"], device)
        if feature_names is not None:
            forecaster.check_features(feature_names)
        return forecaster


def _pad_rows(x: torch.Tensor, rows: int) -> torch.Tensor:
    """`x` with zero rows appended up to `rows` along the first dimension."""
    if len(x) == rows:
        return x
    return torch.cat([x, x.new_zeros((rows - len(x), *x.shape[1:]))])


class _NumpyLSTMStep:
    """One step of a trained SequenceLSTM in NumPy, for streaming on the CPU.

    Written by hand because a batch-1, one-step call through PyTorch costs about 40 us of
    dispatch per layer on a small CPU (nn.LSTM about 300 us), against a few us for the
    same arithmetic in NumPy. Same weights, same gate order (i, f, g, o) as nn.LSTM.
    """

    def __init__(self, model: torch.nn.Module) -> None:
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


class ForecastStream:
    """One LSTM step per bar with the state kept on the device (live feeds, streaming backtests).

    On the CPU the sequence model steps in NumPy (see `_NumpyLSTMStep`); elsewhere the
    state stays on the device and each step moves one row in and one number out.
    """

    def __init__(self, forecaster: Forecaster) -> None:
        self.forecaster = forecaster
        self._state = None
        self._window: deque[torch.Tensor] = deque(maxlen=forecaster.model_config.window)
        self._numpy = (forecaster.device.type == "cpu"
                       and forecaster.model_config.kind == "sequence")
        if self._numpy:
            self._cell = _NumpyLSTMStep(forecaster.model)
            self._mean = forecaster.mean.astype(np.float64)
            self._std = forecaster.std.astype(np.float64)

    def reset(self) -> None:
        self._state = None
        self._window.clear()

    @torch.no_grad()
    def warm(self, rows: np.ndarray) -> None:
        """Advance the state over complete raw rows without producing forecasts."""
        if len(rows) == 0:
            return
        f = self.forecaster
        x = f._inputs(rows)
        if f.model_config.kind != "sequence":
            self._window.extend(x)
            return
        state = self._state
        if self._numpy and state is not None:
            state = tuple(torch.as_tensor(np.stack([s[k] for s in state])[:, None, :],
                                          dtype=torch.float32) for k in (0, 1))
        _, state = f.model(x.unsqueeze(0), state)
        if self._numpy:
            h, c = (s[:, 0, :].double().numpy() for s in state)
            state = [(h[layer], c[layer]) for layer in range(len(h))]
        self._state = state

    @torch.no_grad()
    def step(self, row: np.ndarray | Sequence[float]) -> float:
        """The forecast for the bar whose raw feature row this is; NaN (state kept) if incomplete."""
        row = np.asarray(row, dtype=np.float64)
        if not np.isfinite(row).all():
            return float("nan")
        f = self.forecaster
        if self._numpy:
            if self._state is None:
                zeros = np.zeros(self._cell.hidden)
                self._state = [(zeros, zeros) for _ in self._cell.layers]
            raw = self._cell((row - self._mean) / self._std, self._state)
            if f.model_config.head == "direction":
                return 1.0 / (1.0 + np.exp(-raw))
            return raw * f.target_std
        x = f._inputs(row[None, :])
        if f.model_config.kind == "sequence":
            out, self._state = f.model(x.unsqueeze(0), self._state)
            return float(f._output(out[0, -1]).item())
        self._window.append(x[0])
        if len(self._window) < f.model_config.window:
            return float("nan")
        out = f.model(torch.stack(tuple(self._window)).unsqueeze(0))
        return float(f._output(out[0]).item())


def save_checkpoint(path: str | Path, payload: dict) -> None:
    """torch.save a dict of tensors and plain values, stamped with the format and version."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": CHECKPOINT_FORMAT, "version": __version__, **payload}, tmp)
    tmp.replace(path)


def load_checkpoint(path: str | Path, kind: str) -> dict:
    """Load with `weights_only=True` (no arbitrary pickle) and check format, version, kind."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file.")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a corrupt or unsafe file
        raise CheckpointError(f"{path}: not a readable lstm-strategy checkpoint ({exc}).") from exc
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        found = blob.get("format") if isinstance(blob, dict) else None
        raise CheckpointError(f"{path}: checkpoint format {found!r}, this version reads format "
                              f"{CHECKPOINT_FORMAT}. Re-train and save again.")
    saved = str(blob.get("version"))
    if saved.split(".")[:2] != __version__.split(".")[:2]:
        raise CheckpointError(f"{path}: written by lstm-strategy {saved}, this is {__version__}; "
                              f"models may differ between versions. Install lstm-strategy=={saved} "
                              f"or re-train.")
    if blob.get("kind") != kind:
        raise CheckpointError(f"{path}: holds a {blob.get('kind')!r}, expected a {kind!r}.")
    return blob
