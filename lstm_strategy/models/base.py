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
from dataclasses import InitVar, dataclass, field
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
CLASSES: dict[str, type] = {}  # classes given as objects (ModelConfig(kind=MyGRU)), by path


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
    found = MODELS.get(kind) or CLASSES.get(kind)
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
    if unknown and not known:
        raise ConfigError(f"model.params: {name} takes no params (it declares no Params "
                          f"dataclass); got {unknown}.")
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
class LSTMParams:
    """The knobs of the built-in sequence LSTM (model.params; also written flat, as
    model.hidden_size, in configs from before 0.1.1)."""

    hidden_size: int = 64
    num_layers: int = 2
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for key in ("hidden_size", "num_layers"):
            if getattr(self, key) < 1:
                raise ConfigError(f"model.params.{key}={getattr(self, key)} must be >= 1.")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.params.dropout={self.dropout} must be in [0, 1).")


def _builtin_params() -> list[type]:
    """The Params dataclasses of the package's own kinds."""
    return [cls.Params for cls in list(MODELS.values())
            if isinstance(cls, type) and cls.__module__.startswith("lstm_strategy.")]


def builtin_knobs() -> dict[str, dataclasses.Field]:
    """Every built-in kind's knobs by name (the flat spellings a config may still use)."""
    found: dict[str, dataclasses.Field] = {}
    for params in _builtin_params():
        for f in dataclasses.fields(params):
            found.setdefault(f.name, f)
    return found


def builtin_knob_types() -> dict[str, type]:
    """The type of every built-in knob, by name (for checking their flat spellings)."""
    found: dict[str, type] = {}
    for params in _builtin_params():
        for name, hint in typing.get_type_hints(params).items():
            found.setdefault(name, hint)
    return found


LEGACY_KNOBS = ("hidden_size", "num_layers", "dropout", "window", "asset_embedding", "graph",
                "graph_k", "graph_threshold", "graph_window", "graph_layer", "graph_layers")


@dataclass(frozen=True)
class ModelConfig:
    """Which model (model.* in a config file): its kind, its own params, its head.

    `kind` is a registered kind (sequence | window | pooled | lstm_gnn) or a class by
    import path (YAML `class:`); `params` are that class's own knobs, checked against its
    `Params` dataclass (the built-ins' are in their files: LSTMParams, WindowParams,
    PooledParams, GraphParams). `head` is every model's. The built-in knobs may also be
    given flat (`ModelConfig(hidden_size=32)`, `model.hidden_size: 32`, `--set
    model.hidden_size=32`), as before 0.1.1: they go into `params`, and win over it.
    """

    kind: str = "sequence"  # sequence | window | pooled | lstm_gnn, module:Class, or the class
    params: dict = field(default_factory=dict)  # the model class's own knobs (`Params`)
    head: str = "regression"  # regression (forward log return) | direction (P(up))
    hidden_size: InitVar[int | None] = None
    num_layers: InitVar[int | None] = None
    dropout: InitVar[float | None] = None
    window: InitVar[int | None] = None
    asset_embedding: InitVar[int | None] = None
    graph: InitVar[str | None] = None
    graph_k: InitVar[int | None] = None
    graph_threshold: InitVar[float | None] = None
    graph_window: InitVar[int | None] = None
    graph_layer: InitVar[str | None] = None
    graph_layers: InitVar[int | None] = None

    def __post_init__(self, *flat: object) -> None:
        if isinstance(self.kind, type):  # ModelConfig(kind=MyGRU): the class itself
            given = self.kind
            object.__setattr__(self, "kind", class_path(given))
            if ":" in self.kind:
                CLASSES[self.kind] = given
        cls = model_class(self.kind)
        declared = {f.name for f in dataclasses.fields(cls.Params)}
        params = dict(self.params or {})
        knobs = builtin_knobs()
        for name, value in zip(LEGACY_KNOBS, flat, strict=True):
            if value is None:
                continue
            if name in declared:
                params[name] = value
            elif value != _default(knobs[name]):
                raise ConfigError(f"model.{name}={value!r} is not a knob of model.kind="
                                  f"{self.kind}; its params: {sorted(declared) or 'none'} "
                                  f"(lstm_gnn's params hold every built-in knob: a compare "
                                  f"config gives each kind the ones it reads).")
        # every knob spelled out, defaults too: one config, one form (and its YAML lists them)
        object.__setattr__(self, "params", dataclasses.asdict(check_params(cls, params)))
        if self.head not in HEADS:
            raise ConfigError(f"model.head={self.head!r}; choose one of {list(HEADS)}.")

    def __getattr__(self, name: str) -> object:
        if name in LEGACY_KNOBS:  # config.model.hidden_size, as before 0.1.1
            return getattr(self.knobs, name, _default(builtin_knobs()[name]))
        raise AttributeError(name)

    def __hash__(self) -> int:
        return hash((self.kind, self.head, tuple(sorted(self.params.items()))))

    @property
    def knobs(self) -> object:
        """The params as the model class's `Params` dataclass (defaults filled in)."""
        return check_params(self.model_class, self.params)

    def with_kind(self, kind: str) -> ModelConfig:
        """The same head and the params the other kind declares (e.g. the LSTM size of an
        LSTM-GNN config for its per-asset comparison)."""
        declared = {f.name for f in dataclasses.fields(model_class(kind).Params)}
        return ModelConfig(kind=kind, params={k: v for k, v in self.params.items()
                                              if k in declared}, head=self.head)

    @property
    def model_class(self) -> type[ForecastModel]:
        """The class this config builds."""
        return model_class(self.kind)

    @property
    def multi_asset(self) -> bool:
        """Whether this kind forecasts every asset of the data with one model."""
        return self.model_class.multi_asset


for _name in LEGACY_KNOBS:  # read through __getattr__ (the params), not as class defaults
    delattr(ModelConfig, _name)


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

    def host_stepper(self, mean: np.ndarray, std: np.ndarray, target_std: float,
                     direction: bool) -> Any | None:
        """A host copy of `stream_step`, fused with the scaling (`mean`, `std`) and the
        output (sigmoid, or times `target_std`), for where torch's per-call cost dominates.
        It holds its state: `step(raw_row) -> forecast` (NaN, state kept, on an incomplete
        row), `reset()`, `to_torch(device)` and `load_torch(state)` (warming runs in torch)."""
        return None


class LSTMModel(ForecastModel):
    """The built-in kinds' body: an nn.LSTM (batch first) and a linear head from its
    hidden state to one number, sized by its params (LSTMParams or a subclass)."""

    Params = LSTMParams

    def __init__(self, n_features: int, config: ModelConfig) -> None:
        super().__init__(n_features, config)
        p = self.params
        self.lstm = nn.LSTM(n_features, p.hidden_size, p.num_layers, batch_first=True,
                            dropout=p.dropout if p.num_layers > 1 else 0.0)
        self.head = nn.Linear(p.hidden_size, 1)


def steps_on_host(model: ForecastModel) -> bool:
    """Whether the model offers a host stepper (streams step it, not torch, once a bar)."""
    return type(model).host_stepper is not ForecastModel.host_stepper


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
