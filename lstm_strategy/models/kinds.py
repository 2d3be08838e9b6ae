"""The registry of model kinds, each kind's params, and `ModelConfig`: torch-free.

A config names a model (`model.kind`, `model.class`, `model.params`) and is checked here
without importing PyTorch: the built-in kinds' params are declared below, so reading a
config, checking it or serving a sweep point from cached forecasts never loads torch.
The classes themselves (sequence.py, window.py, pooled.py, lstm_gnn.py) load on first
use, and a kind of the user's is imported to read its `Params` (its module needs torch).
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from dataclasses import InitVar, dataclass, field
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..plugins import USER_MODULE_PREFIX, import_object

if TYPE_CHECKING:
    from .base import ForecastModel

HEADS = ("regression", "direction")
ENTRY_POINTS = "lstm_strategy.models"  # installed packages register their kinds here


@dataclass(frozen=True)
class NoParams:
    """The params of a kind whose knobs are ModelConfig's own fields (the built-in LSTMs)."""


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


@dataclass(frozen=True)
class WindowParams(LSTMParams):
    """The window model's knobs: the LSTM's, and the bars per input window."""

    window: int = 60

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.window < 2:
            raise ConfigError(f"model.params.window={self.window} must be >= 2 bars.")


@dataclass(frozen=True)
class PooledParams(LSTMParams):
    """The pooled LSTM's knobs: the LSTM's, and each asset's learnt embedding width."""

    asset_embedding: int = 4  # 0: none

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.asset_embedding < 0:
            raise ConfigError(f"model.params.asset_embedding={self.asset_embedding} must be "
                              f">= 0.")


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


class Builtin(typing.NamedTuple):
    """A built-in kind as a config sees it, before its class is imported."""

    path: str  # "module:Class"
    params: type
    multi_asset: bool


BUILTIN = {
    "sequence": Builtin("lstm_strategy.models.sequence:SequenceLSTM", LSTMParams, False),
    "window": Builtin("lstm_strategy.models.window:WindowLSTM", WindowParams, False),
    "pooled": Builtin("lstm_strategy.models.pooled:PooledLSTM", PooledParams, True),
    "lstm_gnn": Builtin("lstm_strategy.models.lstm_gnn:LSTMGNN", GraphParams, True),
}
# kind -> class, or "module:Class" not imported yet (built-ins, entry points)
MODELS: dict[str, type[ForecastModel] | str] = {k: b.path for k, b in BUILTIN.items()}
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
    import path ("mypkg.models:MyGRU", "models/my_gru.py:MyGRU"). Imports it (and torch)."""
    from .base import ForecastModel

    if kind not in MODELS and ":" not in kind:
        _entry_point_kinds()
    found = MODELS.get(kind) or CLASSES.get(kind)
    if isinstance(found, str):  # a built-in or an entry point not imported yet
        found = import_object(found, f"model.kind={kind!r}")
        MODELS[kind] = found
    if found is None:
        if ":" not in kind:
            raise ConfigError(f"model.kind={kind!r}; choose one of {sorted(MODELS)}, or name a "
                              f"class: model.class: mypkg.models:MyModel.")
        found = import_object(kind, "model.class")
    if not (isinstance(found, type) and issubclass(found, ForecastModel)):
        raise ConfigError(f"model.class={kind!r} is not a model: subclass "
                          f"lstm_strategy.models.SequenceModel (or ForecastModel).")
    return found


def builtin(kind: str) -> Builtin | None:
    """The built-in kind `kind` names while it is still the package's own (a class the user
    registers under the same name replaces it)."""
    found = MODELS.get(kind)
    spec = BUILTIN.get(kind)
    if spec is None:
        return None
    if found == spec.path or (isinstance(found, type) and class_path(found) == spec.path):
        return spec
    return None


def kind_params(kind: str) -> tuple[type, bool, str]:
    """What a config needs of a kind: its `Params` dataclass, whether it forecasts many
    assets with one model, and its name in messages. Torch-free for the built-ins."""
    spec = builtin(kind)
    if spec is not None:
        return spec.params, spec.multi_asset, kind
    cls = model_class(kind)
    return cls.Params, cls.multi_asset, _name(cls)


def _name(cls: type) -> str:
    return class_path(cls) if cls.kind not in MODELS else cls.kind


def check_params(cls: type[ForecastModel], params: dict) -> object:
    """`params` as the model class's own `Params` dataclass, every key and type checked;
    one ConfigError naming the key, what is allowed and the class."""
    return checked_params(cls.Params, params, _name(cls))


def checked_params(spec: type, params: dict, name: str) -> object:
    """`params` as the dataclass `spec` (a kind's `Params`), each key and type checked."""
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


def builtin_knobs() -> dict[str, dataclasses.Field]:
    """Every built-in kind's knobs by name (the flat spellings a config may still use)."""
    found: dict[str, dataclasses.Field] = {}
    for spec in BUILTIN.values():
        for f in dataclasses.fields(spec.params):
            found.setdefault(f.name, f)
    return found


def builtin_knob_types() -> dict[str, type]:
    """The type of every built-in knob, by name (for checking their flat spellings)."""
    found: dict[str, type] = {}
    for spec in BUILTIN.values():
        for name, hint in typing.get_type_hints(spec.params).items():
            found.setdefault(name, hint)
    return found


LEGACY_KNOBS = ("hidden_size", "num_layers", "dropout", "window", "asset_embedding", "graph",
                "graph_k", "graph_threshold", "graph_window", "graph_layer", "graph_layers")


@dataclass(frozen=True)
class ModelConfig:
    """Which model (model.* in a config file): its kind, its own params, its head.

    `kind` is a registered kind (sequence | window | pooled | lstm_gnn) or a class by
    import path (YAML `class:`); `params` are that class's own knobs, checked against its
    `Params` dataclass (the built-ins' are above: LSTMParams, WindowParams, PooledParams,
    GraphParams). `head` is every model's. The built-in knobs may also be given flat
    (`ModelConfig(hidden_size=32)`, `model.hidden_size: 32`, `--set
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
        spec, _, name = kind_params(self.kind)
        declared = {f.name for f in dataclasses.fields(spec)}
        params = dict(self.params or {})
        knobs = builtin_knobs()
        for key, value in zip(LEGACY_KNOBS, flat, strict=True):
            if value is None:
                continue
            if key in declared:
                params[key] = value
            elif value != _default(knobs[key]):
                raise ConfigError(f"model.{key}={value!r} is not a knob of model.kind="
                                  f"{self.kind}; its params: {sorted(declared) or 'none'} "
                                  f"(lstm_gnn's params hold every built-in knob: a compare "
                                  f"config gives each kind the ones it reads).")
        # every knob spelled out, defaults too: one config, one form (and its YAML lists them)
        object.__setattr__(self, "params", dataclasses.asdict(checked_params(spec, params,
                                                                             name)))
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
        spec, _, name = kind_params(self.kind)
        return checked_params(spec, self.params, name)

    def with_kind(self, kind: str) -> ModelConfig:
        """The same head and the params the other kind declares (e.g. the LSTM size of an
        LSTM-GNN config for its per-asset comparison)."""
        declared = {f.name for f in dataclasses.fields(kind_params(kind)[0])}
        return ModelConfig(kind=kind, params={k: v for k, v in self.params.items()
                                              if k in declared}, head=self.head)

    @property
    def model_class(self) -> type[ForecastModel]:
        """The class this config builds (importing it, and torch)."""
        return model_class(self.kind)

    @property
    def multi_asset(self) -> bool:
        """Whether this kind forecasts every asset of the data with one model."""
        return kind_params(self.kind)[1]


for _name_ in LEGACY_KNOBS:  # read through __getattr__ (the params), not as class defaults
    delattr(ModelConfig, _name_)
