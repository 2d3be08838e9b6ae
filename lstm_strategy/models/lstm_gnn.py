"""LSTM-GNN: the pooled LSTM's per-asset states mixed across assets by graph layers.

At every bar each asset's hidden state is combined with its neighbours' states of the
same bar (torch-geometric's dense GCN or GAT layers, with a residual link), then the
shared head forecasts each asset. The graph is a buffer set at each retrain from data
before the retrain date (see `lstm_strategy.graph`), so it is saved with the fold's
weights and never sees the future; mixing only states of the same bar keeps the model
causal. torch-geometric is imported when such a model is built, not before.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from .base import ModelConfig, register
from .pooled import PooledLSTM

SPARSE_SHARE = 0.1  # graphs with at most this share of links propagate sparsely


@register
class LSTMGNN(PooledLSTM):
    """PooledLSTM + `graph_layers` dense graph convolutions over each bar's states."""

    kind = "lstm_gnn"
    uses_graph = True

    def __init__(self, n_features: int, config: ModelConfig, n_assets: int) -> None:
        super().__init__(n_features, config, n_assets)
        try:
            from torch_geometric.nn import DenseGATConv, DenseGCNConv
        except ImportError as exc:  # an optional extra
            raise ConfigError("model.kind=lstm_gnn needs torch-geometric: pip install "
                              "'lstm-strategy[graph]'.") from exc
        hidden = config.hidden_size
        layer = (lambda: DenseGCNConv(hidden, hidden)) if config.graph_layer == "gcn" else (
            lambda: DenseGATConv(hidden, hidden, heads=1))
        self.convs = nn.ModuleList(layer() for _ in range(config.graph_layers))
        self.register_buffer("adjacency", torch.zeros(n_assets, n_assets))

    def set_graph(self, adjacency: np.ndarray) -> None:
        """The fold's graph: a symmetric [assets, assets] 0/1 matrix without self-links."""
        self.adjacency.copy_(torch.as_tensor(adjacency, dtype=self.adjacency.dtype))

    def mix(self, hidden: torch.Tensor) -> torch.Tensor:
        # hidden [batch, assets, steps, width]: each bar's states form one graph's nodes
        for conv in self.convs:
            hidden = hidden + torch.relu_(self._convolve(conv, hidden))
        return hidden

    def _convolve(self, conv: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        """`conv(states of one bar, adjacency)` for every bar of `hidden` at once.

        DenseGCNConv allows a different graph per sample, so it would multiply each bar's
        [assets, assets] matrix separately, after moving the bars to the front. Every bar
        here shares one graph, so the layer's normalised matrix D^-1/2 (A + I) D^-1/2,
        built as the layer builds it, is applied to all bars in one product, with the
        layer's own weights and in the states' own layout (equal to the layer's output,
        tested), as a sparse product when the graph has few links (bench_multiasset: the
        graph layers then add about a third to the pooled LSTM's cost, 32 or 500 assets).
        DenseGATConv's attention depends on each bar's states: it runs as it is.
        """
        batch, assets, steps, width = hidden.shape
        if self.config.graph_layer != "gcn":
            nodes = hidden.transpose(1, 2).reshape(batch * steps, assets, width)
            out = conv(nodes, self.adjacency)
            return out.reshape(batch, steps, assets, width).transpose(1, 2)
        links = self.adjacency.clone()
        links.fill_diagonal_(1.0)
        scale = links.sum(dim=-1).clamp(min=1).pow(-0.5)
        norm = scale[:, None] * links * scale[None, :]
        flat = conv.lin(hidden).reshape(batch, assets, steps * width)
        if links.count_nonzero() <= SPARSE_SHARE * links.numel():
            # a few links per asset (top-k graphs): a sparse product skips the zeros
            sparse = norm.to_sparse_csr()
            out = (sparse @ flat[0]).unsqueeze(0) if batch == 1 else torch.stack(
                [sparse @ flat[b] for b in range(batch)])
        else:
            out = torch.matmul(norm, flat)
        out = out.view(batch, assets, steps, width)
        return out.add_(conv.bias) if conv.bias is not None else out
