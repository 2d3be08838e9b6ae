"""LSTM-GNN: the pooled LSTM's per-asset states mixed across assets by graph layers.

At every bar each asset's hidden state is combined with its neighbours' states of the
same bar (torch-geometric's dense GCN or GAT layers, with a residual link), then the
shared head forecasts each asset. The graph is a buffer set at each retrain from data
before the retrain date (see `lstm_strategy.graph`), so it is saved with the fold's
weights and never sees the future; mixing only states of the same bar keeps the model
causal. torch-geometric is imported when such a model is built, not before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from .base import ModelConfig, register
from .pooled import PooledLSTM, PooledParams


@dataclass(frozen=True)
class GraphParams(PooledParams):
    """The LSTM-GNN's knobs: the pooled LSTM's, the graph (rebuilt at every retrain from
    the labels known by then; see lstm_strategy.graph) and its layers."""

    graph: str = "correlation"  # correlation | sector | both (sector: data.sectors)
    graph_k: int = 5  # links to each asset's k most correlated assets (0: threshold only)
    graph_threshold: float = 0.0  # and only where the correlation is at least this
    graph_window: int = 252  # the last this many known labels give the correlations
    graph_layer: str = "gcn"  # gcn (DenseGCNConv) | gat (DenseGATConv)
    graph_layers: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        choices = {"graph": ("correlation", "sector", "both"), "graph_layer": ("gcn", "gat")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"model.params.{key}={getattr(self, key)!r}; choose one of "
                                  f"{list(allowed)}.")
        rules = {"graph_k": self.graph_k >= 0, "graph_window": self.graph_window >= 20,
                 "graph_layers": self.graph_layers >= 1,
                 "graph_threshold": -1.0 <= self.graph_threshold <= 1.0}
        bad = [k for k, ok in rules.items() if not ok]
        if bad:
            raise ConfigError(f"model.params.{bad[0]}={getattr(self, bad[0])!r} is out of "
                              f"range (graph_k >= 0, graph_window >= 20, graph_layers >= 1, "
                              f"graph_threshold in [-1, 1]).")


@register
class LSTMGNN(PooledLSTM):
    """PooledLSTM + `graph_layers` dense graph convolutions over each bar's states."""

    kind = "lstm_gnn"
    uses_graph = True
    Params = GraphParams

    def __init__(self, n_features: int, config: ModelConfig, n_assets: int) -> None:
        super().__init__(n_features, config, n_assets)
        try:
            from torch_geometric.nn import DenseGATConv, DenseGCNConv
        except ImportError as exc:  # an optional extra
            raise ConfigError("model.kind=lstm_gnn needs torch-geometric: pip install "
                              "'lstm-strategy[graph]'.") from exc
        p = self.params
        hidden = p.hidden_size
        layer = (lambda: DenseGCNConv(hidden, hidden)) if p.graph_layer == "gcn" else (
            lambda: DenseGATConv(hidden, hidden, heads=1))
        self.convs = nn.ModuleList(layer() for _ in range(p.graph_layers))
        self.register_buffer("adjacency", torch.zeros(n_assets, n_assets))

    def set_graph(self, adjacency: np.ndarray) -> None:
        """The fold's graph: a symmetric [assets, assets] 0/1 matrix without self-links."""
        self.adjacency.copy_(torch.as_tensor(adjacency, dtype=self.adjacency.dtype))

    def mix(self, hidden: torch.Tensor) -> torch.Tensor:
        # hidden [batch, assets, steps, width] -> one graph of `assets` nodes per bar
        batch, assets, steps, width = hidden.shape
        nodes = hidden.transpose(1, 2).reshape(batch * steps, assets, width)
        for conv in self.convs:
            nodes = nodes + torch.relu(conv(nodes, self.adjacency))
        return nodes.reshape(batch, steps, assets, width).transpose(1, 2)
