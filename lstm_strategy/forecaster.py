"""Device-resident forecasts from trained models: batch (a segment) or streaming (one step a bar).

A `Forecaster` is one trained model with the constants that turn raw feature rows into
its inputs (feature names and order, a `Scaler`) and its outputs back into forecasts.
Model and scaler live on the chosen device; a whole segment goes over in one transfer each
way. A streaming step of the sequence LSTM runs on the host (a batch-1 step is all
latency); other models step on the device, one row in and one number out. A
`WalkForwardStream` steps the models of every walk-forward fold, switching at each
retrain date. Checkpoints hold tensors and plain values only.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import __version__
from .errors import CheckpointError, ConfigError, DeviceError
from .models import ForecastModel, ModelConfig, build_model, class_path
from .models.base import CHUNK_BARS

CHECKPOINT_FORMAT = 1
FORECAST_CHUNK_BARS = CHUNK_BARS  # LSTM steps per batch-forecast call (the shape every call has)
FORECAST_BATCH = 256  # windows per batch-forecast call (window models)


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
def full_precision(device: torch.device) -> Iterator[None]:
    """On CUDA, run the block in plain float32 with cuDNN's deterministic kernels.

    PyTorch lets cuDNN's LSTMs use TF32 (a 10-bit mantissa) on Ampere and newer GPUs, which
    moved forecasts by about 1e-3 of their size against the CPU's on an H200 (tests/
    test_cuda.py); these models are too small for TF32 to save time. Elsewhere a no-op.
    """
    if device.type != "cuda":
        yield
        return
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    matmul_tf32 = matmul.allow_tf32
    matmul.allow_tf32 = False
    try:
        with cudnn.flags(enabled=cudnn.enabled, benchmark=False, deterministic=True,
                         allow_tf32=False):
            yield
    finally:
        matmul.allow_tf32 = matmul_tf32


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


@dataclass(frozen=True)
class Scaler:
    """Per-feature standardisation fitted on a training span (constant features keep std 1)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, rows: np.ndarray) -> Scaler:
        mean = rows.mean(axis=0)
        std = rows.std(axis=0)
        std[~(std > 1e-12)] = 1.0
        return cls(mean, std)


class Forecaster:
    """One trained model plus its scaler: raw feature rows in, forecasts out."""

    def __init__(
        self,
        model: ForecastModel,
        model_config: ModelConfig,
        feature_names: Sequence[str],
        scaler: Scaler,
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
        self.scaler = scaler
        self._mean = torch.as_tensor(np.asarray(scaler.mean, dtype=np.float32), device=self.device)
        self._std = torch.as_tensor(np.asarray(scaler.std, dtype=np.float32), device=self.device)

    def scale(self, rows: np.ndarray) -> torch.Tensor:
        """Raw feature rows [rows, features] as the model's inputs, on the device."""
        x = torch.as_tensor(np.ascontiguousarray(rows, dtype=np.float32), device=self.device)
        return (x - self._mean) / self._std

    def output(self, raw: torch.Tensor) -> np.ndarray:
        """The model's raw outputs as forecasts (float64 on the host): a log return, or P(up)
        for a direction head. The sigmoid runs in NumPy: torch's CPU kernel rounds the last
        elements of an array (its scalar tail) differently from the rest, so a forecast
        moved by 1e-7 with the number of rows after it (found by `lstm-backtest audit`)."""
        if self.model_config.head == "direction":
            return 1.0 / (1.0 + np.exp(-raw.cpu().double().numpy()))
        return (raw * self.target_std).cpu().double().numpy()  # a product rounds alike anywhere

    @torch.no_grad()
    def forecast_rows(self, rows: np.ndarray, batch_size: int = FORECAST_BATCH,
                      chunk_bars: int = FORECAST_CHUNK_BARS) -> np.ndarray:
        """Forecasts for consecutive, complete raw rows [time, features] on the device.

        The model starts cold at the first row (NaN until it has the context it needs).
        Every model call has one fixed shape (`chunk_bars` steps or `batch_size` windows;
        the last call padded), so a forecast never depends on how many rows follow it.
        """
        if len(rows) == 0:
            return np.empty(0)
        with full_precision(self.device):
            raw = self.model.forecast_segment(self.scale(rows), chunk_bars, batch_size)
        # float64 only on the host: some devices (MPS) have no float64
        return self.output(raw)

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
            "model_class": class_path(type(self.model)),
            "feature_names": list(self.feature_names),
            # float64, as fitted: the host stepper scales in float64, so a loaded model
            # forecasts bit for bit as the one trained (a resumed live run relies on it)
            "mean": torch.from_numpy(np.asarray(self.scaler.mean, dtype=np.float64).copy()),
            "std": torch.from_numpy(np.asarray(self.scaler.std, dtype=np.float64).copy()),
            "target_std": self.target_std,
            "horizon": self.horizon,
            "n_assets": getattr(self.model, "n_assets", 1),
        }

    @classmethod
    def from_dict(cls, blob: dict, device: str | torch.device = "cpu") -> Forecaster:
        try:
            config = ModelConfig(**blob["model_config"])
        except ConfigError as exc:
            raise CheckpointError(f"checkpoint of model {blob['model_config'].get('kind')!r}: "
                                  f"{exc}") from None
        names = list(blob["feature_names"])
        built = class_path(config.model_class)
        saved = blob.get("model_class", built)  # checkpoints before 0.1.1 name no class
        if saved != built:
            raise CheckpointError(f"checkpoint written by model class {saved}, but "
                                  f"model.kind={config.kind!r} now builds {built}; load it "
                                  f"where {saved} is importable, or re-train.")
        model = build_model(len(names), config, blob.get("n_assets", 1))
        try:
            model.load_state_dict(blob["state_dict"])
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise CheckpointError(f"checkpoint weights do not fit {built} with params "
                                  f"{config.params} ({first}); the class changed since it "
                                  f"was saved, or re-train.") from None
        scaler = Scaler(blob["mean"].double().numpy(), blob["std"].double().numpy())
        return cls(model, config, names, scaler, blob["target_std"], blob["horizon"], device)

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


class ForecastStream:
    """One model step per bar (live feeds, streaming backtests).

    A model that offers a host stepper (the sequence LSTM: one compiled call a bar) steps
    on the host whatever its device: a batch-1 step is all latency, and on an H200 machine
    a CUDA step cost about seven times the host's (BENCHMARKS.md). Warming over the
    context rows still runs on the device. Other models keep their state on the device;
    each step moves one row in and one number out.
    """

    def __init__(self, forecaster: Forecaster) -> None:
        self.forecaster = forecaster
        f = forecaster
        self._host = f.model.host_stepper(f.scaler.mean, f.scaler.std, f.target_std,
                                          f.model_config.head == "direction")
        self._step = self._host.step if self._host is not None else None
        self.reset()

    def reset(self) -> None:
        if self._host is not None:
            self._host.reset()
        else:
            self._state = self.forecaster.model.stream_start()

    @torch.no_grad()
    def warm(self, rows: np.ndarray) -> None:
        """Advance the state over complete raw rows without producing forecasts."""
        if len(rows) == 0:
            return
        f = self.forecaster
        with full_precision(f.device):
            if self._host is None:
                self._state = f.model.stream_warm(f.scale(rows), self._state)
                return
            self._host.load_torch(f.model.stream_warm(f.scale(rows),
                                                      self._host.to_torch(f.device)))

    def step(self, row: np.ndarray | Sequence[float]) -> float | np.ndarray:
        """The forecast for the bar whose raw feature row this is; NaN (state kept) if
        incomplete. A multi-asset model takes rows [assets, features] and gives [assets]."""
        if self._step is not None:
            return self._step(np.asarray(row, dtype=np.float64))
        row = np.asarray(row, dtype=np.float64)
        if not np.isfinite(row).all():
            return float("nan") if row.ndim == 1 else np.full(len(row), np.nan)
        f = self.forecaster
        with torch.no_grad(), full_precision(f.device):
            raw, self._state = f.model.stream_step(f.scale(row[None, :])[0], self._state)
        if isinstance(raw, float):
            return raw
        out = f.output(raw)
        return float(out.item()) if out.size == 1 and row.ndim == 1 else out


class WalkForwardStream:
    """Bar-by-bar forecasts from walk-forward models, for live feeds and streaming backtests.

    `switches` are (retrain date, forecaster) in date order. Call `step(date, row)` once
    per bar in date order. At each retrain date the next model takes over, its state
    warmed on the complete rows before it (kept in a buffer), exactly as the batch
    forecasts are made.
    """

    def __init__(self, switches: Sequence[tuple[pd.Timestamp, Forecaster]],
                 context_bars: int, buffer_rows: int = 1) -> None:
        self._switches = list(switches)
        self._context = context_bars
        longest = max((f.model.context_rows(context_bars) for _, f in self._switches),
                      default=1)
        self._buffer: deque[np.ndarray] = deque(maxlen=max(1, longest, buffer_rows))
        self._next = 0
        self._stream: ForecastStream | None = None

    def add(self, date: pd.Timestamp, forecaster: Forecaster) -> None:
        """A model trained while running: it takes over at the first bar at or after `date`,
        warmed on the complete rows before that bar (the buffer holds `buffer_rows`)."""
        if self._switches and date < self._switches[-1][0]:
            raise ValueError(f"switch at {date} before the last one ({self._switches[-1][0]})")
        self._switches.append((pd.Timestamp(date), forecaster))

    @property
    def active(self) -> int:
        """How many models have taken over so far (the current one is the last of them)."""
        return self._next

    def step(self, date: pd.Timestamp, row: np.ndarray) -> float:
        """Forecast for the bar at `date` from its raw feature row (NaN before the first model)."""
        row = np.asarray(row, dtype=np.float64)
        while self._next < len(self._switches) and date >= self._switches[self._next][0]:
            forecaster = self._switches[self._next][1]
            self._stream = forecaster.stream()
            rows = np.array(self._buffer) if self._buffer else np.empty((0, len(row)))
            context = forecaster.model.context_rows(self._context)
            self._stream.warm(rows[len(rows) - min(len(rows), context):])
            self._next += 1
        if self._stream is not None:
            forecast = self._stream.step(row)
        else:
            forecast = float("nan") if row.ndim == 1 else np.full(len(row), np.nan)
        # an incomplete row always forecasts NaN, so a number means a complete row (no
        # NumPy reduction, a third of this method's cost); NaN needs the element check
        if (type(forecast) is float and forecast == forecast) or np.isfinite(row).all():
            self._buffer.append(row)
        return forecast


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
