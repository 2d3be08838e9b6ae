"""LSTM-GNN: the pooled LSTM's per-asset states mixed across assets by graph layers.

At every bar each asset's hidden state is combined with its neighbours' states of the
same bar (torch-geometric's dense GCN or GAT layers, with a residual link), then the
shared head forecasts each asset. The graph is a buffer set at each retrain from data
before the retrain date (see `lstm_strategy.graph`), so it is saved with the fold's
weights and never sees the future; mixing only states of the same bar keeps the model
causal. torch-geometric is imported when such a model is built, not before.
"""

from __future__ import annotations

import threading

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from .base import ModelConfig, register
from .kinds import GraphParams
from .pooled import PooledLSTM

# From this many assets GCN layers propagate over the links (a sparse product of the
# normalised graph with each bar's states) instead of multiplying the dense [assets,
# assets] matrix into every bar: assets^2 x hidden a bar against links x hidden.
# Measured crossover (bench/bench_multiasset.py, BENCHMARKS.md): dense wins below it.
SPARSE_FROM = 64


def propagation(n_assets: int, layer: str) -> str:
    """How a graph layer mixes the assets: "dense" (torch-geometric's dense layers: GAT
    attention always, GCN on few assets) or "sparse" (GCN over the links). A third,
    "gather" (a padded [assets, slots] neighbour index), is kept for the benchmark: its
    cost follows the busiest asset's links, and correlation graphs have hubs."""
    return "sparse" if layer == "gcn" and n_assets >= SPARSE_FROM else "dense"


def gcn_links(edges: torch.Tensor, n_assets: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The links with every self-link added ([2, links + assets]) and each asset's
    D^-1/2 (DenseGCNConv's normalisation of A + I: link i-j weighs scale[i] x scale[j])."""
    keep = edges[0] != edges[1]
    loops = torch.arange(n_assets).repeat(2, 1)
    links = torch.cat([edges[:, keep], loops], dim=1)
    degree = torch.bincount(links[0], minlength=n_assets)
    return links, degree.to(torch.float64).pow(-0.5)


def gcn_neighbours(edges: torch.Tensor, n_assets: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each asset's neighbours and GCN weights, self-link included: [assets, slots] index
    and weight (`gcn_links`' normalisation), padded with weight 0 (the benchmark's gather)."""
    src, dst = edges[0], edges[1]
    keep = src != dst
    src, dst = src[keep], dst[keep]
    _, scale = gcn_links(edges, n_assets)
    degree = torch.bincount(src, minlength=n_assets) + 1  # the self-link
    slots = int(degree.max())
    index = torch.arange(n_assets).repeat(slots, 1).T.contiguous()
    weight = torch.zeros(n_assets, slots, dtype=torch.float64)
    weight[:, 0] = scale * scale
    order = torch.argsort(src * n_assets + dst)  # sorted by asset, then neighbour
    src, dst = src[order], dst[order]
    starts = torch.cumsum(degree - 1, 0) - (degree - 1)
    slot = torch.arange(len(src)) - starts[src] + 1
    index[src, slot] = dst
    weight[src, slot] = scale[src] * scale[dst]
    return index, weight


_SCRATCH = threading.local()


def _scratch(like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two tensors shaped as `like`, reused by this thread's next call of the same shape."""
    pair = getattr(_SCRATCH, "pair", None)
    if pair is None or pair[0].shape != like.shape or pair[0].dtype != like.dtype or \
            pair[0].device != like.device:
        pair = _SCRATCH.pair = (torch.empty_like(like), torch.empty_like(like))
    return pair


@register
class LSTMGNN(PooledLSTM):
    """PooledLSTM + `graph_layers` graph convolutions over each bar's states.

    The fold's graph is kept as links (`edges`, [2, links]: what the checkpoint holds),
    normalised once when it is set. GCN layers on many assets propagate over the links
    (see `propagation`); with the same weights the two paths agree to float rounding.
    """

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
        self.propagation = propagation(n_assets, p.graph_layer)
        self.register_buffer("edges", torch.zeros(2, 0, dtype=torch.long))
        self._graph_changed()

    def set_graph(self, adjacency: np.ndarray) -> None:
        """The fold's graph: a symmetric [assets, assets] 0/1 matrix without self-links."""
        links = np.argwhere(np.asarray(adjacency) != 0).T
        self.edges = torch.as_tensor(links, dtype=torch.long, device=self.edges.device)
        self._graph_changed()

    @property
    def adjacency(self) -> torch.Tensor:
        """The graph as a dense 0/1 [assets, assets] matrix."""
        dense = torch.zeros(self.n_assets, self.n_assets, device=self.edges.device)
        dense[self.edges[0], self.edges[1]] = 1.0
        return dense

    def _graph_changed(self) -> None:
        device, dtype = self.edges.device, self.head.weight.dtype
        if self.propagation == "dense":
            self.register_buffer("_dense", self.adjacency.to(dtype), persistent=False)
            return
        if self.propagation == "sparse":  # the normalised matrix as a sparse COO tensor
            links, scale = gcn_links(self.edges.cpu(), self.n_assets)
            matrix = torch.sparse_coo_tensor(
                links, scale[links[0]] * scale[links[1]], (self.n_assets, self.n_assets),
                check_invariants=True).coalesce()
            self.register_buffer("_sparse", matrix.to(device, dtype), persistent=False)
            return
        index, weight = gcn_neighbours(self.edges.cpu(), self.n_assets)
        self.register_buffer("_index", index.T.contiguous().to(device), persistent=False)
        self.register_buffer("_weight", weight.T.contiguous().to(device, dtype),
                             persistent=False)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object) -> None:
        legacy = state_dict.pop(prefix + "adjacency", None)  # checkpoints before links
        if legacy is not None:
            state_dict[prefix + "edges"] = torch.nonzero(legacy).T.contiguous()
        edges = state_dict.get(prefix + "edges")
        if edges is not None:  # a fold's graph has its own number of links
            self.edges = torch.empty_like(edges, device=self.edges.device)
        super()._load_from_state_dict(state_dict, prefix, *args)
        self._graph_changed()

    def mix(self, hidden: torch.Tensor) -> torch.Tensor:
        # hidden [batch, assets, steps, width]: states of the same bar mixed across assets
        if self.propagation == "gather":
            for conv in self.convs:
                hidden = hidden + torch.relu(self._gather(conv.lin(hidden)) + conv.bias)
            return hidden
        if self.propagation == "sparse" and not torch.is_grad_enabled():
            return self._forecast_mix(hidden)
        if self.propagation == "sparse":
            for conv in self.convs:
                hidden = hidden + torch.relu_(self._product(conv.lin(hidden), conv.bias))
            return hidden
        batch, assets, steps, width = hidden.shape
        nodes = hidden.transpose(1, 2).reshape(batch * steps, assets, width)
        for conv in self.convs:
            nodes = nodes + torch.relu(conv(nodes, self._dense))
        return nodes.reshape(batch, steps, assets, width).transpose(1, 2)

    def _gather(self, z: torch.Tensor) -> torch.Tensor:
        """sum over each asset's links of weight x neighbour's z, along the assets axis."""
        out = z * self._weight[0].view(1, -1, 1, 1)  # slot 0: the asset itself
        for index, weight in zip(self._index[1:], self._weight[1:], strict=True):
            out = out + z.index_select(1, index) * weight.view(1, -1, 1, 1)
        return out

    def _forecast_mix(self, hidden: torch.Tensor) -> torch.Tensor:
        """`mix` without autograd, in place and in two scratch tensors kept between calls
        (one pair per thread, for every model): at 500 assets a fresh [assets, steps,
        width] tensor's page faults cost more than the sparse product that fills it."""
        batch, assets, steps, width = hidden.shape
        states = hidden.transpose(0, 1).reshape(assets, -1)  # a view for batch 1
        z, y = _scratch(states)
        for conv in self.convs:
            torch.matmul(states.view(-1, width), conv.lin.weight.T, out=z.view(-1, width))
            torch.addmm(conv.bias.repeat(batch * steps)[None], self._sparse, z, out=y)
            states += y.relu_()
        return states.reshape(assets, batch, steps, width).transpose(0, 1)

    def _product(self, z: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """The same sum as a sparse matrix product over the assets axis, plus `bias`."""
        batch, assets, steps, width = z.shape
        flat = z.transpose(0, 1).reshape(assets, batch * steps * width)
        out = torch.sparse.addmm(bias.repeat(batch * steps)[None], self._sparse, flat)
        return out.reshape(assets, batch, steps, width).transpose(0, 1)
