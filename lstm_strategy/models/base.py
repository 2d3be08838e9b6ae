"""What every forecasting model offers the rest of the package, and the registry of kinds.

A model is a plain PyTorch module plus a few methods that say how it reads a span of
feature rows: how many rows of context it needs before its first forecast, how a
training span is cut into batches, how it forecasts a whole segment in fixed-shape calls
(so no forecast depends on how many rows follow it), and how it steps one row at a time.
Training loops (training.py) and inference (forecaster.py) use only these methods, so
no code outside models/ asks which kind of model it has.
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..plugins import USER_MODULE_PREFIX, import_object

HEADS = ("regression", "direction")
# LSTM steps per model call when a whole span is run (forecasts, validation): one fixed
# shape, so no output depends on how many rows follow it, and no single cuDNN call is
# longer than it supports (100,000 steps in one call failed on an H200)
CHUNK_BARS = 256
MODELS: dict[str, type[ForecastModel]] = {}

State = Any  # whatever a model carries from one call to the next (None = cold)


ENTRY_POINTS = "lstm_strategy.models"  # installed packages register their kinds here


def register(cls: type[ForecastModel]) -> type[ForecastModel]:
    """Class decorator: make a model available as `ModelConfig(kind=cls.kind)`."""
    MODELS[cls.kind] = cls
    return cls


def class_path(cls: type) -> str:
    """"module:Class" (or "file.py:Class" for a class loaded from a file), the way a config
    names a class and a checkpoint records it."""
    module = sys.modules.get(cls.__module__)
    if cls.__module__.startswith(USER_MODULE_PREFIX) and getattr(module, "__file__", None):
        return f"{module.__file__}:{cls.__qualname__}"
    return f"{cls.__module__}:{cls.__qualname__}"


def _entry_point_kinds() -> None:
    """Register the model kinds installed packages declare (entry point group
    `lstm_strategy.models`: name = "module:Class")."""
    from importlib.metadata import entry_points

    for point in entry_points(group=ENTRY_POINTS):
        if point.name not in MODELS:
            MODELS[point.name] = point.value  # imported when first used


def model_class(kind: str) -> type[ForecastModel]:
    """The class a `model.kind` names: a registered kind, an installed entry point, or an
    import path ("mypkg.models:MyGRU", "models/my_gru.py:MyGRU")."""
    if kind not in MODELS and ":" not in kind:
        _entry_point_kinds()
    found = MODELS.get(kind)
    if isinstance(found, str):  # an entry point not imported yet
        found = MODELS[kind] = import_object(found, f"model.kind={kind!r} (entry point)")
    if found is None:
        if ":" not in kind:
            raise ConfigError(f"model.kind={kind!r}; choose one of {sorted(MODELS)}, or name a "
                              f"class: model.class: mypkg.models:MyModel.")
        found = import_object(kind, "model.class")
    if not (isinstance(found, type) and issubclass(found, ForecastModel)):
        raise ConfigError(f"model.class={kind!r} is not a model: subclass "
                          f"lstm_strategy.models.SequenceModel (or ForecastModel).")
    return found


@dataclass(frozen=True)
class NoParams:
    """The params of a kind whose knobs are ModelConfig's own fields (the built-in LSTMs)."""


def check_params(cls: type[ForecastModel], params: dict) -> object:
    """`params` as the model class's own `Params` dataclass, every key and type checked;
    one ConfigError naming the key, what is allowed and the class."""
    spec = cls.Params
    name = class_path(cls) if cls.kind not in MODELS else cls.kind
    known = {f.name: f for f in dataclasses.fields(spec)}
    unknown = sorted(set(params) - set(known))
    if unknown and not known and cls.kind in MODELS:
        knobs = [f.name for f in dataclasses.fields(ModelConfig) if f.name not in (
            "kind", "params")]
        raise ConfigError(f"model.params: {name} takes no model.params; its knobs are "
                          f"model.{', model.'.join(knobs)}.")
    if unknown:
        allowed = [f"{f.name} ({_type_name(f.type)}, default {_default(f)!r})"
                   for f in known.values()] or ["none"]
        raise ConfigError(f"model.params: unknown key(s) {unknown} for {name}; its params: "
                          f"{', '.join(allowed)}.")
    hints = typing.get_type_hints(spec)
    for key, value in params.items():
        want = hints[key]
        ok = (isinstance(value, bool) if want is bool else
              isinstance(value, int) and not isinstance(value, bool) if want is int else
              isinstance(value, int | float) and not isinstance(value, bool) if want is float
              else isinstance(value, str) if want is str else True)
        if not ok:
            raise ConfigError(f"model.params.{key}={value!r} must be {_type_name(want)} "
                              f"({name}).")
    try:
        return spec(**{k: float(v) if hints[k] is float else v for k, v in params.items()})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model.params for {name}: {exc}") from None


def _type_name(annotation: object) -> str:
    return getattr(annotation, "__name__", str(annotation))


def _default(f: dataclasses.Field) -> object:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of one forecaster (model.* in a config file).

    `kind` is a registered kind or a class by import path (YAML `class:`); `params` are
    that class's own knobs (its `Params` dataclass). The remaining fields are the
    built-in LSTMs' knobs, and `head` is every model's.
    """

    kind: str = "sequence"  # sequence | window | pooled | lstm_gnn, or module:Class
    params: dict = field(default_factory=dict)  # the model class's own params (`Params`)
    hidden_size: int = 64
    num_layers: int = 2
    dropout: float = 0.0
    head: str = "regression"  # regression (forward log return) | direction (P(up))
    window: int = 60  # bars per input window (window model only)
    # multi-asset models (pooled, lstm_gnn): one model for every asset of the data
    asset_embedding: int = 4  # size of each asset's learnt embedding (0: none)
    # the graph of lstm_gnn, rebuilt at every retrain from the labels known by then
    graph: str = "correlation"  # correlation | sector | both (sector: data.sectors)
    graph_k: int = 5  # links to each asset's k most correlated assets (0: by threshold only)
    graph_threshold: float = 0.0  # and only where the correlation is at least this
    graph_window: int = 252  # the last this many known labels give the correlations
    graph_layer: str = "gcn"  # gcn (DenseGCNConv) | gat (DenseGATConv)
    graph_layers: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", dict(self.params or {}))
        check_params(model_class(self.kind), self.params)
        if self.head not in HEADS:
            raise ConfigError(f"model.head={self.head!r}; choose one of {list(HEADS)}.")
        for key in ("hidden_size", "num_layers"):
            if getattr(self, key) < 1:
                raise ConfigError(f"model.{key}={getattr(self, key)} must be >= 1.")
        if self.window < 2:
            raise ConfigError(f"model.window={self.window} must be >= 2 bars.")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout={self.dropout} must be in [0, 1).")
        choices = {"graph": ("correlation", "sector", "both"), "graph_layer": ("gcn", "gat")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"model.{key}={getattr(self, key)!r}; choose one of "
                                  f"{list(allowed)}.")
        rules = {"asset_embedding": self.asset_embedding >= 0, "graph_k": self.graph_k >= 0,
                 "graph_window": self.graph_window >= 20, "graph_layers": self.graph_layers >= 1,
                 "graph_threshold": -1.0 <= self.graph_threshold <= 1.0}
        bad = [k for k, ok in rules.items() if not ok]
        if bad:
            raise ConfigError(f"model.{bad[0]}={getattr(self, bad[0])!r} is out of range "
                              f"(asset_embedding >= 0, graph_k >= 0, graph_window >= 20, "
                              f"graph_layers >= 1, graph_threshold in [-1, 1]).")

    def __hash__(self) -> int:
        return hash(tuple((k, v) for k, v in dataclasses.asdict(self).items() if k != "params")
                    + tuple(sorted(self.params.items())))

    @property
    def model_class(self) -> type[ForecastModel]:
        """The class this config builds."""
        return model_class(self.kind)

    @property
    def multi_asset(self) -> bool:
        """Whether this kind forecasts every asset of the data with one model."""
        return self.model_class.multi_asset


class TrainingChunk(NamedTuple):
    """One optimisation step's worth of a training span."""

    inputs: torch.Tensor  # [batch, steps, features]
    labels: torch.Tensor  # [batch, outputs]
    mask: torch.Tensor | None  # [batch, outputs] weights of each label, None = all count
    rows: torch.Tensor  # [batch, outputs] row of the span each label belongs to
    carry: bool  # continue from the previous chunk's state
    has_loss: bool  # False: the chunk only advances the state


class ForecastModel(nn.Module):
    """What a forecasting model offers training (training.py) and inference (forecaster.py).

    `forward(x, state)` maps inputs [batch, steps, features] to (outputs [batch, outputs],
    state). The causal rule every method keeps: an output for row t depends on rows <= t
    only. Most users subclass `SequenceModel`, which implements everything below for a
    plain sequence module; a kind with its own batching implements the methods itself.
    """

    kind: ClassVar[str] = ""
    multi_asset: ClassVar[bool] = False  # one model over [rows, assets, features] inputs
    uses_graph: ClassVar[bool] = False  # wants `set_graph` at every retrain
    Params: ClassVar[type] = NoParams  # the dataclass of this kind's own params

    def __init__(self, n_features: int, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.n_features = n_features
        self.params = check_params(type(self), config.params)

    def context_rows(self, context_bars: int) -> int:
        """Rows before a segment's first forecast that a forecast needs (warm-up or window)."""
        raise NotImplementedError

    def training_chunks(self, x: torch.Tensor, labels: torch.Tensor, train: torch.Tensor,
                        config: Any, rng: np.random.Generator) -> Iterator[TrainingChunk]:
        """One epoch over a training span x [rows, features]; `train` marks usable labels."""
        raise NotImplementedError

    def validation_loss(self, x: torch.Tensor, labels: torch.Tensor, val: torch.Tensor,
                        loss_fn: nn.Module) -> float:
        """Mean loss over the rows marked by `val` (NaN when none)."""
        raise NotImplementedError

    def forecast_segment(self, x: torch.Tensor, chunk_bars: int, batch_size: int
                         ) -> torch.Tensor:
        """Raw outputs [rows] for consecutive rows from a cold start (NaN until ready).

        Every call has one fixed shape (the last one padded), so an output never depends
        on how many rows follow it: a GEMM's float rounding can depend on its row count.
        """
        raise NotImplementedError

    def stream_start(self) -> State:
        """A cold streaming state."""
        return None

    def stream_warm(self, x: torch.Tensor, state: State) -> State:
        """Advance the state over rows x [rows, features] without forecasting."""
        raise NotImplementedError

    def stream_step(self, x: torch.Tensor, state: State) -> tuple[float, State]:
        """The raw output for one row x [features] (NaN until ready) and the new state."""
        raise NotImplementedError

    def numpy_stepper(self) -> Any | None:
        """A NumPy copy of `stream_step` run on the host, where torch's per-call cost dominates."""
        return None


class LSTMModel(ForecastModel):
    """The built-in kinds' body: an nn.LSTM (batch first) and a linear head from its
    hidden state to one number, sized by ModelConfig's fields."""

    def __init__(self, n_features: int, config: ModelConfig) -> None:
        super().__init__(n_features, config)
        self.lstm = nn.LSTM(
            n_features, config.hidden_size, config.num_layers, batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        self.head = nn.Linear(config.hidden_size, 1)


def detach_state(state: State) -> State:
    """A recurrent state cut from its graph (tensors, or tuples/lists of them)."""
    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, tuple | list):
        return type(state)(detach_state(s) for s in state)
    return state


def pad_rows(x: torch.Tensor, rows: int) -> torch.Tensor:
    """`x` with zero rows appended up to `rows` along the first dimension."""
    if len(x) == rows:
        return x
    return torch.cat([x, x.new_zeros((rows - len(x), *x.shape[1:]))])


def build_model(n_features: int, config: ModelConfig, n_assets: int = 1) -> ForecastModel:
    """A fresh, untrained model of the configured kind for `n_features` inputs per asset."""
    cls = config.model_class
    if cls.multi_asset:
        return cls(n_features, config, n_assets)
    if n_assets != 1:
        raise ConfigError(f"model.kind={config.kind} forecasts one asset; for {n_assets} at "
                          f"once choose one of "
                          f"{sorted(k for k, m in MODELS.items() if m.multi_asset)}.")
    return cls(n_features, config)
