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
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import __version__
from .forecaster import resolve_device
from .models import ModelConfig
from .training import TrainConfig, WalkForwardResult, walk_forward


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

    cls = model_config.model_class
    if cls.__module__.startswith("lstm_strategy."):
        return None
    try:
        source = Path(inspect.getsourcefile(cls) or "")
    except TypeError:
        return None
    return hashlib.sha256(source.read_bytes()).hexdigest()[:16] if source.is_file() else None


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
        "package": __version__, "torch": torch.__version__, "code": code_digest(),
        "model_source": model_source_digest(model_config),
        "device": resolve_device(device).type, "model": asdict(model_config),
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
    `key` is `forecast_key(...)` of these inputs when the caller has it already.
    """
    key = key or forecast_key(features, target, model_config, train_config, device, sectors)
    path = cache_dir() / f"{key}.pt"
    if use_cache and not refresh and path.is_file():
        try:
            return WalkForwardResult.load(path, device=device), False
        except Exception:  # a corrupt or foreign file: train again and overwrite it
            path.unlink(missing_ok=True)
    result = walk_forward(features, target, model_config, train_config, device=device,
                          sectors=sectors, **kwargs)
    if use_cache:
        result.save(path, cache_key=key)
    return result, True


def asset_key(key: str, asset: str) -> str:
    """The cache key of one asset's forecasts within a multi-asset result."""
    return f"{key}#{asset}"


def cached_predictions(key_or_path: str | Path) -> pd.Series | pd.DataFrame:
    """The forecasts of a cached walk-forward result (one asset's for an `asset_key`)."""
    key, _, asset = str(key_or_path).partition("#")
    path = Path(key)
    if path.suffix != ".pt":
        path = cache_dir() / f"{key}.pt"
    predictions = WalkForwardResult.load(path).predictions
    return predictions[asset].rename("forecast") if asset else predictions
