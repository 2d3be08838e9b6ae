"""The asset graph of a multi-asset model, built at each retrain from what was known then.

Links come from the correlation of the assets' labels (forward log returns) over the
last `graph_window` bars whose labels were known before the retrain date (the same
purged labels the fold trains on), each asset linked to its `graph_k` most correlated
peers (and only where the correlation reaches `graph_threshold`), and/or from a sector
map (assets of one sector linked). Symmetric, 0/1, no self-links (the layers add them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ConfigError, DataError
from .models import ModelConfig


def correlation_graph(labels: np.ndarray, k: int, threshold: float, window: int
                      ) -> np.ndarray:
    """Links from the correlations of `labels` [rows, assets] (NaN where unknown) over the
    last `window` rows where every asset's label is known."""
    assets = labels.shape[1]
    complete = labels[np.isfinite(labels).all(axis=1)][-window:]
    adjacency = np.zeros((assets, assets))
    if len(complete) < 20 or assets < 2:
        return adjacency  # too little history: no links yet
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(complete, rowvar=False)
    corr = np.nan_to_num(corr, nan=-np.inf)
    np.fill_diagonal(corr, -np.inf)
    if k > 0:
        # each asset's k strongest peers; stable order, so ties go to the earlier asset
        peers = np.argsort(-corr, axis=1, kind="stable")[:, :min(k, assets - 1)]
        adjacency[np.arange(assets)[:, None], peers] = 1.0
    else:
        adjacency[:] = 1.0
    adjacency[corr < threshold] = 0.0
    np.fill_diagonal(adjacency, 0.0)
    return np.maximum(adjacency, adjacency.T)


def sector_graph(assets: Sequence[str], sectors: Mapping[str, str]) -> np.ndarray:
    """Links between the assets of one sector."""
    missing = [a for a in assets if a not in sectors]
    if missing:
        raise DataError(f"the sector map names no sector for {missing}; add them to the "
                        f"data.sectors file (columns ticker, sector).")
    groups = np.array([sectors[a] for a in assets], dtype=object)
    adjacency = (groups[:, None] == groups[None, :]).astype(float)
    np.fill_diagonal(adjacency, 0.0)
    return adjacency


def build_graph(labels: np.ndarray, assets: Sequence[str], config: ModelConfig,
                sectors: Mapping[str, str] | None = None) -> np.ndarray:
    """The graph `config.graph` asks for, from known labels [rows, assets] (NaN elsewhere)."""
    parts = []
    if config.graph in ("correlation", "both"):
        parts.append(correlation_graph(labels, config.graph_k, config.graph_threshold,
                                       config.graph_window))
    if config.graph in ("sector", "both"):
        if not sectors:
            raise ConfigError(f"model.graph={config.graph} needs a sector map: set "
                              f"data.sectors to a CSV of ticker,sector.")
        parts.append(sector_graph(assets, sectors))
    return np.maximum.reduce(parts)


def load_sectors(path: str | Path) -> dict[str, str]:
    """A sector map from a CSV with columns ticker and sector."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such sector file (columns ticker, sector).")
    frame = pd.read_csv(path, dtype=str)
    if not {"ticker", "sector"} <= set(frame.columns):
        raise DataError(f"{path}: needs columns ticker and sector; found {list(frame.columns)}.")
    if frame["ticker"].duplicated().any():
        raise DataError(f"{path}: ticker {frame['ticker'][frame['ticker'].duplicated()].iloc[0]}"
                        f" appears twice; give each ticker one sector.")
    return dict(zip(frame["ticker"].str.strip(), frame["sector"].str.strip(), strict=True))
