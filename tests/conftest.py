"""Shared fixtures: slices of the real data, tiny model settings, the truncation check."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lstm_strategy import ModelConfig, TrainConfig, load_ohlcv

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"

os.environ.setdefault("LSTM_STRATEGY_CACHE", tempfile.mkdtemp(prefix="lstm-strategy-cache-"))
torch.set_num_threads(1)  # the project's setting (ExperimentConfig.threads)


@pytest.fixture(scope="session")
def aapl() -> pd.DataFrame:
    return load_ohlcv(DATA / "AAPL.csv")


@pytest.fixture(scope="session")
def aapl_small(aapl: pd.DataFrame) -> pd.DataFrame:
    """About 1,000 bars: enough for a few walk-forward folds with a tiny model."""
    return aapl.loc["2008-01-01":"2011-12-31"]


TINY_MODEL = ModelConfig(hidden_size=8, num_layers=1)
TINY_TRAIN = TrainConfig(min_train_bars=300, step=100, epochs=2, context_bars=60, bptt=32,
                         burn_in=5, batch_streams=4, patience=2)


def tiny_model(kind: str) -> ModelConfig:
    """TINY_MODEL as another built-in kind (the window model with 20-bar windows)."""
    return ModelConfig(kind=kind, hidden_size=8, num_layers=1,
                       **({"window": 20} if kind == "window" else {}))


@pytest.fixture
def tiny() -> tuple[ModelConfig, TrainConfig]:
    return TINY_MODEL, TINY_TRAIN


def random_cuts(index: pd.Index, n: int, seed: int, lo: int = 60) -> list[pd.Timestamp]:
    rng = np.random.default_rng(seed)
    return [index[i] for i in sorted(rng.choice(np.arange(lo, len(index) - 1), n, replace=False))]


def tiny_overrides(model: bool = True, **extra: str) -> list[str]:
    """--set overrides for a fast CLI run on a slice of AAPL (`model=False`: leave the
    model's params alone, for a model class of one's own)."""
    sizes = {"model.hidden_size": "8", "model.num_layers": "1"} if model else {}
    values = {
        "data.start": "2008-01-01", "data.end": "2011-12-31",
        **sizes, "train.epochs": "2",
        "train.min_train_bars": "300", "train.step": "100", "train.context_bars": "60",
        "train.bptt": "32", "train.burn_in": "5", "train.batch_streams": "4",
        "report.save_models": "false", **extra,
    }
    return [f"{k}={v}" for k, v in values.items()]


def random_walk_bars(index: pd.DatetimeIndex, seed: int = 0, step: float = 0.01,
                     spread: float = 0.002) -> pd.DataFrame:
    """Seeded random-walk OHLCV bars on any index (any bar spacing)."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, step, len(index))))
    open_ = np.r_[close[0], close[:-1]]
    return pd.DataFrame({"Open": open_, "High": np.maximum(open_, close) * (1 + spread),
                         "Low": np.minimum(open_, close) * (1 - spread), "Close": close,
                         "Volume": rng.integers(100, 1000, len(index)).astype(float)},
                        index=index)


def hourly_bars(days: pd.DatetimeIndex, seed: int = 0) -> pd.DataFrame:
    """Seeded random-walk bars every hour around the clock (FX-like), on the given days."""
    index = pd.DatetimeIndex([d + pd.Timedelta(hours=h) for d in days for h in range(24)])
    return random_walk_bars(index, seed, step=0.002, spread=0.001)
