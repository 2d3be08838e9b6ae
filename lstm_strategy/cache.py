"""Walk-forward results cached on disk under a hash of everything they depend on.

The key covers the feature matrix and the labels (so the data's content, the feature
settings and the exogenous series), the model and training configs (seed included),
the device kind, the versions of this package and of torch, and the source of the
modules that compute forecasts. A one-byte change to
any input is a different key; nothing is ever served for other inputs. The folder
(`LSTM_STRATEGY_CACHE`, else $XDG_CACHE_HOME/lstm-strategy, else ~/.cache/lstm-strategy)
is safe to delete at any time.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
import zipfile
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from . import __version__
from .config import TrainConfig
from .models.kinds import ModelConfig, builtin

if TYPE_CHECKING:
    import torch

    from .training import WalkForwardResult


def cache_dir() -> Path:
    """The forecast cache folder (created on first write)."""
    if os.environ.get("LSTM_STRATEGY_CACHE"):
        return Path(os.environ["LSTM_STRATEGY_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lstm-strategy"


# the modules whose code shapes a forecast: a change to any of them is a new cache key
FORECAST_CODE = ("data.py", "features.py", "sentiment.py", "graph.py", "training.py",
                 "forecaster.py", "models")


@functools.cache
def code_digest() -> str:
    """A hash of the source of the modules that compute forecasts (so an edited checkout
    never gets forecasts an older version of the code computed)."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name in FORECAST_CODE:
        for path in sorted((root / name).rglob("*.py")) if (root / name).is_dir() else [
                root / name]:
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def model_source_digest(model_config: ModelConfig) -> str | None:
    """A hash of the source file of a model class from outside the package (an edited
    user model never gets the forecasts its older version computed); None for built-ins."""
    import inspect

    if builtin(model_config.kind):
        return None
    cls = model_config.model_class
    if cls.__module__.startswith("lstm_strategy."):
        return None
    try:
        source = Path(inspect.getsourcefile(cls) or "")
    except TypeError:
        return None
    return hashlib.sha256(source.read_bytes()).hexdigest()[:16] if source.is_file() else None


@functools.cache
def torch_version() -> str:
    """The installed torch's version, read from its distribution's metadata (the same
    string as `torch.__version__`) so that a key needs no torch import."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch")
    except PackageNotFoundError:  # a torch without metadata (a source tree on the path)
        import torch

        return str(torch.__version__)


# what a GPU that torch could use leaves on Linux: NVIDIA's driver, ROCm's, WSL's
GPU_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia", "/dev/kfd", "/dev/dxg")


def device_type(device: str | torch.device) -> str:
    """The kind of device `device` resolves to (`forecaster.resolve_device(device).type`),
    without importing torch where the answer is certain: "cpu", or "auto" on a Linux
    machine without a GPU driver (torch then sees no GPU)."""
    if not isinstance(device, str):
        return device.type
    if device == "cpu" or (device == "auto" and "torch" not in sys.modules
                           and sys.platform.startswith("linux")
                           and not any(os.path.exists(p) for p in GPU_NODES)):
        return "cpu"
    from .forecaster import resolve_device

    return resolve_device(device).type


def forecast_key(features: pd.DataFrame | Mapping[str, pd.DataFrame],
                 target: pd.Series | Mapping[str, pd.Series], model_config: ModelConfig,
                 train_config: TrainConfig, device: str | torch.device,
                 sectors: Mapping[str, str] | None = None) -> str:
    """A hash of everything a walk-forward result depends on (one series, or {asset: ...})."""
    if isinstance(features, pd.DataFrame):
        frames, targets = {"": features}, {"": target}
    else:
        frames, targets = features, target
    first = next(iter(frames.values()))
    digest = hashlib.sha256()
    digest.update(json.dumps({
        "package": __version__, "torch": torch_version(), "code": code_digest(),
        "model_source": model_source_digest(model_config),
        "device": device_type(device), "model": asdict(model_config),
        "train": asdict(train_config), "columns": [str(c) for c in first.columns],
        "assets": list(frames), "sectors": dict(sectors) if sectors else None,
    }, sort_keys=True, default=str).encode())
    for asset, frame in frames.items():
        digest.update(np.ascontiguousarray(frame.index.as_unit("ns").asi8).tobytes())
        digest.update(np.ascontiguousarray(frame.to_numpy(dtype=np.float64)).tobytes())
        digest.update(np.ascontiguousarray(targets[asset].to_numpy(dtype=np.float64)).tobytes())
    return digest.hexdigest()[:32]


def cached_walk_forward(features: pd.DataFrame | Mapping[str, pd.DataFrame],
                        target: pd.Series | Mapping[str, pd.Series], model_config: ModelConfig,
                        train_config: TrainConfig, *, device: str | torch.device = "auto",
                        use_cache: bool = True, refresh: bool = False, key: str | None = None,
                        sectors: Mapping[str, str] | None = None,
                        **kwargs: object) -> tuple[WalkForwardResult, bool]:
    """`walk_forward`, or its stored result for the same inputs; returns (result, trained).

    `use_cache=False` neither reads nor writes the cache; `refresh` retrains and rewrites;
    `key` is `forecast_key(...)` of these inputs when the caller has it already. Beside
    each result its forecasts are kept on their own (`cached_predictions` reads them
    without torch).
    """
    from .training import WalkForwardResult, walk_forward

    key = key or forecast_key(features, target, model_config, train_config, device, sectors)
    path = cache_dir() / f"{key}.pt"
    if use_cache and not refresh and path.is_file():
        try:
            result = WalkForwardResult.load(path, device=device)
        except Exception:  # a corrupt or foreign file: train again and overwrite it
            path.unlink(missing_ok=True)
            forecasts_path(key).unlink(missing_ok=True)
        else:
            if not forecasts_path(key).is_file():  # a cache from before the forecasts file
                write_forecasts(key, result.predictions)
            return result, False
    result = walk_forward(features, target, model_config, train_config, device=device,
                          sectors=sectors, **kwargs)
    if use_cache:
        forecasts_path(key).unlink(missing_ok=True)  # never beside another run's result
        result.save(path, cache_key=key)
        write_forecasts(key, result.predictions)
    return result, True


def forecasts_path(key: str) -> Path:
    """Where the forecasts of the cached result `key` are kept on their own."""
    return cache_dir() / f"{key}.forecasts.npz"


def is_cached(key: str) -> bool:
    """Whether the cache holds the result `key` and its forecasts file."""
    return (cache_dir() / f"{key}.pt").is_file() and forecasts_path(key).is_file()


def write_forecasts(key: str, predictions: pd.Series | pd.DataFrame) -> None:
    """The forecasts of result `key` as `WalkForwardResult.load` rebuilds them (a tz-naive
    nanosecond index, float64 values), written whole or not at all."""
    meta = {"unit": predictions.index.unit, "name": predictions.index.name,
            "assets": list(predictions.columns) if predictions.ndim == 2 else None}
    path = forecasts_path(key)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as handle:
        np.savez(handle, index=predictions.index.as_unit("ns").asi8,
                 values=np.asarray(predictions.to_numpy(), dtype=np.float64),
                 meta=np.array(json.dumps(meta)))
    tmp.replace(path)


def _read_forecasts(path: Path) -> pd.Series | pd.DataFrame:
    with np.load(path, allow_pickle=False) as blob:
        meta = json.loads(str(blob["meta"]))
        index = pd.DatetimeIndex(blob["index"].astype("datetime64[ns]"),
                                 name=meta["name"]).as_unit(meta["unit"])
        values = blob["values"]
    if meta["assets"] is not None:
        return pd.DataFrame(values, index=index, columns=meta["assets"])
    return pd.Series(values, index=index, name="forecast")


def asset_key(key: str, asset: str) -> str:
    """The cache key of one asset's forecasts within a multi-asset result."""
    return f"{key}#{asset}"


def cached_predictions(key_or_path: str | Path) -> pd.Series | pd.DataFrame:
    """The forecasts of a cached walk-forward result (one asset's for an `asset_key`):
    from its forecasts file (no torch), else from the result itself."""
    key, _, asset = str(key_or_path).partition("#")
    path = Path(key)
    if path.suffix != ".pt":
        path = cache_dir() / f"{key}.pt"
    predictions = None
    if path.parent == cache_dir() and forecasts_path(path.stem).is_file():
        try:
            predictions = _read_forecasts(forecasts_path(path.stem))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            # damaged: the result itself has them
            forecasts_path(path.stem).unlink(missing_ok=True)
    if predictions is None:
        from .training import WalkForwardResult

        predictions = WalkForwardResult.load(path).predictions
        if path.parent == cache_dir():
            write_forecasts(path.stem, predictions)
    return predictions[asset].rename("forecast") if asset else predictions
