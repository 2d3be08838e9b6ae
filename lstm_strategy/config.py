"""One YAML file = one experiment: data, features, model, training, strategy, broker.

Each concern is a small frozen dataclass with defaults; `load_config` maps a YAML file
(plus `key.sub=value` overrides) onto them. Unknown keys, wrong types and values outside
the allowed set are errors that name the key and what is allowed.
"""

from __future__ import annotations

import copy
import datetime
import functools
import re
import types
import typing
import warnings
from dataclasses import asdict, dataclass, field, fields, is_dataclass, make_dataclass
from pathlib import Path

import pandas as pd
import yaml

from .backtest.decision import RULE_PARAMS, check_book, check_rules
from .data import split_source
from .errors import ConfigError, DataError, DataWarning
from .features import FeatureConfig, publication_lag
from .models.kinds import LEGACY_KNOBS, MODELS, ModelConfig, builtin_knob_types
from .resources import configs_dir, ready_file, shipped

CONFIG_DIR = configs_dir()


def _one_of(key: str, value: object, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not allowed; use one of {list(allowed)}.")


DEFAULT_MACRO = "data/macro_us_daily.csv"  # left out, with a note, where it does not cover


@dataclass(frozen=True)
class DataConfig:
    """Where the bars and exogenous series come from and how tickers are aligned."""

    paths: tuple[str, ...] = ("data/AAPL.csv",)
    align: str = "inner"  # inner | ffill | strict (see load_many)
    start: str | None = None  # first date used (ISO), None = all
    end: str | None = None  # last date used (ISO), None = all
    macro: str | None = DEFAULT_MACRO  # None = no exogenous series
    macro_lag: str | int = "0D"  # publication lag after a value's date ends: "0D", "45D", "1B"
    macro_transform: str = "diff"  # diff (bar-to-bar change; stationary) | level
    gaps: str = "exclude"  # holes in the data: exclude (labels/returns across them) | refuse
    date_format: str | None = None  # e.g. "%d.%m.%Y"; None: ISO, or a d/m order settled by the data
    dayfirst: bool | None = None  # for d/m/y vs m/d/y dates when no date_format is given
    tz: str | None = None  # convert intraday timestamps with UTC offsets to this zone
    sentiment: str | None = None  # CSV of (timestamp, ticker or *, text or score); None = none
    sentiment_half_life: str = "3D"  # a headline's weight halves every this long
    close_time: str = "16:00"  # when daily bars close (headlines after it count next day)
    sectors: str | None = None  # CSV of ticker,sector: graph links by sector (model.graph)
    volume: str = "required"  # required | none (FX, indices: volume features left out)
    adjust: bool = True  # scale prices by Adj Close / Close where the file has Adj Close
    exchange_tz: str = "America/New_York"  # the bars' clock when data.tz is unset: close_time
    # is in it, and headline stamps with a UTC offset are converted to it

    def __post_init__(self) -> None:
        object.__setattr__(self, "paths", tuple(self.paths))
        if not self.paths:
            raise ConfigError("data.paths is empty; list at least one CSV or parquet file.")
        _one_of("data.align", self.align, ("inner", "ffill", "strict"))
        for key in ("start", "end"):
            value = getattr(self, key)
            if value is not None:
                try:
                    pd.Timestamp(value)
                except ValueError as exc:
                    raise ConfigError(f"data.{key}={value!r} is not a date; write it as "
                                      f"YYYY-MM-DD.") from exc
        _one_of("data.macro_transform", self.macro_transform, ("level", "diff"))
        _one_of("data.gaps", self.gaps, ("exclude", "refuse"))
        _one_of("data.volume", self.volume, ("required", "none"))
        for key in ("tz", "exchange_tz"):
            zone = getattr(self, key)
            if zone is not None:
                try:
                    pd.Timestamp("2000-01-01", tz=zone)
                except Exception:
                    raise ConfigError(f"data.{key}={zone!r} is not a time zone; use a name "
                                      f"such as UTC or America/New_York.") from None
        tickers = [split_source(p)[0] for p in self.paths]
        twice = sorted({t for t in tickers if tickers.count(t) > 1})
        if twice:
            raise ConfigError(f"data.paths names ticker(s) {twice} twice: {list(self.paths)}. "
                              f"Name each file's ticker: NAME=path (e.g. NVDA=nvda-1999.csv).")
        try:
            if not pd.Timedelta(self.sentiment_half_life) > pd.Timedelta(0):
                raise ValueError
        except ValueError:
            raise ConfigError(f"data.sentiment_half_life={self.sentiment_half_life!r} must be "
                              f"a positive duration such as 3D or 12h.") from None
        if not re.fullmatch(r"\d{1,2}:\d{2}", self.close_time):
            raise ConfigError(f"data.close_time={self.close_time!r}: write HH:MM, e.g. 16:00.")
        try:
            publication_lag(self.macro_lag)
        except DataError as exc:
            raise ConfigError(f"data.macro_lag={self.macro_lag!r}: {exc}") from None

    def sources(self) -> dict[str, str]:
        """Ticker -> path as written, from data.paths (NAME=path names the ticker)."""
        return dict(split_source(p) for p in self.paths)

    @property
    def clock_tz(self) -> str:
        """The zone of the bars' clock: data.tz when intraday stamps are converted to it,
        else the exchange's."""
        return self.tz or self.exchange_tz

    def loader(self) -> dict:
        """Keyword arguments for `load_many` from this section."""
        return {"align": self.align, "adjust": self.adjust, "date_format": self.date_format,
                "dayfirst": self.dayfirst, "tz": self.tz, "volume": self.volume != "none"}


def _strategy_post_init(self: StrategyConfig) -> None:
    _one_of("strategy.mode", self.mode, ("batch", "stream"))
    # "sizer" (the cerebro's own sizer) is for users' scripts: a run adds no sizer
    _one_of("strategy.sizing", self.sizing, ("fixed", "vol_target", "confidence"))
    check_rules(asdict(self), prefix="strategy.")


def _strategy_params(self: StrategyConfig) -> dict:
    """Keyword params for LSTMStrategy."""
    out = asdict(self)
    out.pop("mode")
    return out


# The strategy section is derived from the trading rules' one declaration
# (backtest/decision.py RULE_PARAMS), plus how forecasts reach the strategy.
StrategyConfig = make_dataclass(
    "StrategyConfig",
    [("mode", str, field(default="batch")),  # batch: precomputed; stream: one step a bar
     *((p.name, p.type, field(default=p.default)) for p in RULE_PARAMS)],
    namespace={"__post_init__": _strategy_post_init, "params": _strategy_params,
               "__doc__": "LSTMStrategy's trading rules (see backtest/decision.py) and the "
                          "forecast mode (batch | stream).",
               "__module__": __name__},
    frozen=True,
)


@dataclass(frozen=True)
class BrokerConfig:
    """backtrader broker: starting cash, costs and when orders fill."""

    cash: float = 100_000.0
    commission_bps: float = 5.0  # per side, on traded value (buys only, with the next)
    sell_commission_bps: float | None = None  # sells' rate (Qlib's close_cost); None: the same
    min_commission: float = 0.0  # least commission of a fill, in cash (Qlib's min_cost)
    slippage_bps: float = 2.0  # price moved against each fill
    fill: str = "next_open"  # next_open | close (cheat-on-close: fill at the signal bar's close)
    fractional: bool = False  # trade fractional units (crypto, FX); False: whole units

    def __post_init__(self) -> None:
        _one_of("broker.fill", self.fill, ("next_open", "close"))
        if self.cash <= 0:
            raise ConfigError(f"broker.cash={self.cash} must be > 0.")
        for key in ("commission_bps", "slippage_bps", "sell_commission_bps",
                    "min_commission"):
            if (getattr(self, key) or 0) < 0:
                raise ConfigError(f"broker.{key}={getattr(self, key)} must be >= 0.")

    @property
    def one_rate(self) -> bool:
        """Whether every fill pays commission_bps and nothing else (what the fast
        evaluator models); Qlib-style costs (a sell rate, a minimum) need backtrader."""
        return (self.sell_commission_bps in (None, self.commission_bps)
                and not self.min_commission)


@dataclass(frozen=True)
class BaselineConfig:
    """The baselines reported beside the model."""

    sma_fast: int = 20
    sma_slow: int = 50

    def __post_init__(self) -> None:
        if self.sma_fast < 1:
            raise ConfigError(f"baselines.sma_fast={self.sma_fast} must be >= 1 bar.")
        if self.sma_slow <= self.sma_fast:
            raise ConfigError(f"baselines.sma_slow={self.sma_slow} must be > "
                              f"baselines.sma_fast={self.sma_fast}.")


@dataclass(frozen=True)
class ReportConfig:
    """What a run writes besides the contract's files."""

    charts: bool = True
    static: bool = False  # PNG charts (for papers and e-mail) instead of interactive ones
    save_models: bool = True


@dataclass(frozen=True)
class TrackConfig:
    """Experiment tracking: every run, sweep trial and comparison logged where teams look."""

    backend: str = "none"  # none | mlflow
    uri: str | None = None  # MLflow tracking URI; None: sqlite:///mlruns.db here
    experiment: str | None = None  # MLflow experiment; None: the config's name

    def __post_init__(self) -> None:
        _one_of("track.backend", self.backend, ("none", "mlflow"))


@dataclass(frozen=True)
class PortfolioConfig:
    """The cross-sectional book of a multi-asset comparison (CrossSectionalStrategy)."""

    top_k: int = 5  # assets long (and short, with allow_short) at each rebalance
    allow_short: bool = True  # short the bottom top_k too (half the book each side)
    rebalance: int = 5  # bars between rebalances
    weighting: str = "equal"  # equal | forecast (by distance from the cross-sectional mean)
    gross: float = 1.0  # gross exposure as a fraction of equity
    max_turnover: float = 0.0  # most of equity traded at a rebalance (0: no cap)
    book: str = "rank"  # rank (rebalance to the ranking) | topk_dropout (Qlib's)
    n_drop: int = 1  # topk_dropout: most holdings a leg replaces at a rebalance

    def __post_init__(self) -> None:
        try:
            check_book(top_k=self.top_k, weighting=self.weighting, gross=self.gross,
                       max_turnover=self.max_turnover, rebalance=self.rebalance,
                       book=self.book, n_drop=self.n_drop)
        except ConfigError as exc:
            raise ConfigError(f"portfolio: {exc}") from None


@dataclass(frozen=True)
class FoldsConfig:
    """Where a walk-forward's folds train: in this process, one after another (workers 1),
    or as tasks on the sweeps' backends (local processes, Ray), the same forecasts bit for
    bit with `threads: 1`. Folds that warm-start (train.warm_start) stay sequential."""

    workers: int = 1  # processes (or Ray CPUs) training folds at once
    backend: str = "local"  # local | ray
    address: str | None = None  # a Ray cluster's address; None: a local Ray for the run

    def __post_init__(self) -> None:
        _one_of("folds.backend", self.backend, ("local", "ray"))
        if self.workers < 1:
            raise ConfigError(f"folds.workers={self.workers} must be >= 1.")


@dataclass(frozen=True)
class TrainConfig:
    """Walk-forward schedule and optimisation settings (bars unless said otherwise)."""

    horizon: int = 1  # forecast the log return over this many bars
    min_train_bars: int = 756  # first fold's training span (about 3 years of days)
    train_window: int | None = None  # None = expanding window; else rolling, this many bars
    step: int = 63  # retrain every `step` bars (about a quarter)
    epochs: int = 30
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_streams: int = 16  # parallel contiguous streams (sequence model)
    bptt: int = 64  # truncated back-propagation length (sequence model)
    burn_in: int = 20  # first steps of a cold stream that neither train nor forecast
    context_bars: int = 250  # bars that warm the state before a fold's first forecast
    batch_size: int = 256  # windows per batch (window model)
    val_fraction: float = 0.15
    patience: int = 5
    warm_start: bool = False  # start fold k from fold k-1's weights
    seed: int = 0

    def __post_init__(self) -> None:
        rules = {
            "horizon": (self.horizon >= 1, ">= 1 bar"),
            "min_train_bars": (self.min_train_bars >= 20, ">= 20 bars"),
            "step": (self.step >= 1, ">= 1 bar"),
            "epochs": (self.epochs >= 1, ">= 1"),
            "lr": (self.lr > 0, "> 0"),
            "weight_decay": (self.weight_decay >= 0, ">= 0"),
            "batch_streams": (self.batch_streams >= 1, ">= 1"),
            "bptt": (self.bptt >= 2, ">= 2 steps"),
            "burn_in": (self.burn_in >= 0, ">= 0 steps"),
            "context_bars": (self.context_bars >= 0, ">= 0 bars"),
            "batch_size": (self.batch_size >= 1, ">= 1"),
            "val_fraction": (0 <= self.val_fraction < 0.5, "in [0, 0.5)"),
            "patience": (self.patience >= 1, ">= 1 epoch"),
            "train_window": (self.train_window is None or self.train_window >= 20,
                             "null (expanding) or >= 20 bars"),
        }
        for key, (ok, rule) in rules.items():
            if not ok:
                raise ConfigError(f"train.{key}={getattr(self, key)!r} must be {rule}.")



@dataclass(frozen=True)
class CompareConfig:
    """What `lstm-backtest compare` sets side by side: model kinds, with and without macro."""

    models: tuple[str, ...] = ("sequence", "pooled", "lstm_gnn")
    macro: tuple[bool, ...] = (True, False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", tuple(self.models))
        object.__setattr__(self, "macro", tuple(self.macro))
        unknown = [m for m in self.models if m not in MODELS]
        if unknown or not self.models:
            raise ConfigError(f"compare.models={list(self.models)}; choose from "
                              f"{sorted(MODELS)}.")
        if not self.macro:
            raise ConfigError("compare.macro is empty; give [true], [false] or both.")


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole experiment; `lstm-backtest run` with no arguments runs the defaults."""

    name: str = "default"
    device: str = "auto"  # auto | cpu | cuda | mps
    threads: int = 1  # torch CPU threads for the run (0 = torch's default, one per core)
    data: DataConfig = field(default_factory=DataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    broker: BrokerConfig = field(default_factory=BrokerConfig)
    baselines: BaselineConfig = field(default_factory=BaselineConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    track: TrackConfig = field(default_factory=TrackConfig)
    portfolio: PortfolioConfig = field(default_factory=PortfolioConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    folds: FoldsConfig = field(default_factory=FoldsConfig)

    def __post_init__(self) -> None:
        _one_of("device", self.device.split(":")[0], ("auto", "cpu", "cuda", "mps"))
        if self.threads < 0:
            raise ConfigError(f"threads={self.threads} must be >= 0 (0 = torch's default).")

    def to_dict(self) -> dict:
        """Plain data (lists, not tuples) for YAML."""
        return _plain(asdict(self))


def _plain(value: object) -> object:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _type_name(annotation: object) -> str:
    return getattr(annotation, "__name__", str(annotation)).replace("NoneType", "null")


def _coerce(value: object, annotation: object, key: str) -> object:
    """Check `value` against a field's annotation; returns it (lists become tuples)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(annotation):
            try:
                return _coerce(value, option, key)
            except ConfigError:
                continue
        names = " or ".join(_type_name(a) for a in typing.get_args(annotation))
        raise ConfigError(f"{key}={value!r} must be {names}.")
    if annotation is type(None):
        if value is None:
            return None
        raise ConfigError(f"{key} must be null.")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key} must be a list, got {value!r}.")
        item = typing.get_args(annotation)[0]
        return tuple(_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value))
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}={value!r} must be true or false.")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}={value!r} must be a whole number.")
    if annotation is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}={value!r} must be a number.")
    if annotation is str:
        if isinstance(value, str):
            return value
        if isinstance(value, datetime.date):  # YAML reads 2008-01-01 as a date
            return value.isoformat()
        raise ConfigError(f"{key}={value!r} must be a string.")
    if annotation is dict:
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return dict(value)
        raise ConfigError(f"{key} must be a mapping of names to values, got {value!r}.")
    if is_dataclass(annotation):
        return _build(annotation, value, key)
    raise ConfigError(f"{key}: unsupported type {annotation!r}.")  # pragma: no cover


@functools.cache
def _hints(cls: type) -> dict:
    return typing.get_type_hints(cls)


def _build(cls: type, values: object, prefix: str) -> object:
    """The dataclass `cls` from a mapping; every problem in it is found before one is raised.

    Unknown keys, wrong types and each section's own rules are collected across all
    sections and reported together, so a config with three mistakes is fixed in one go.
    """
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix or 'config'} must be a mapping of keys to values, got "
                          f"{values!r}.")
    hints = _hints(cls)
    names = [f.name for f in fields(cls)]
    if cls is ModelConfig and isinstance(values, dict):
        if "class" in values:
            if "kind" in values:
                raise ConfigError(f"{prefix}: give kind (a built-in model) or class (yours), "
                                  f"not both.")
            values = {("kind" if k == "class" else k): v for k, v in values.items()}
        names += list(LEGACY_KNOBS)  # the flat spellings of the built-in kinds' params
        hints = {**hints, **builtin_knob_types()}
    where = f"{prefix}." if prefix else ""
    problems = [f"unknown key {where}{k}; allowed keys "
                f"{'in ' + prefix if prefix else 'at the top level'}: {names}."
                for k in values if k not in names]
    kwargs = {}
    for name in names:
        if name in values:
            try:
                kwargs[name] = _coerce(values[name], hints[name], f"{where}{name}")
            except ConfigError as exc:
                problems += getattr(exc, "problems", [str(exc)])
    if not problems:
        try:
            return cls(**kwargs)
        except ValueError as exc:  # a section's own rules (ConfigError names the key)
            message = str(exc)
            problems.append(message if isinstance(exc, ConfigError) or (
                prefix and message.startswith(prefix)) else f"{prefix or 'config'}: {message}")
    error = ConfigError(problems[0] if len(problems) == 1 else
                        f"{len(problems)} problems: " + " ".join(
                            f"({i}) {p}" for i, p in enumerate(problems, 1)))
    error.problems = problems
    raise error


def yaml_problem(text: str, exc: Exception) -> str:
    """A YAML error with its line: the parser's mark, or the line of an impossible date."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    first = str(exc).splitlines()[0]
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: {getattr(exc, 'problem', first)}"
    for number, line in enumerate(text.splitlines(), 1):
        for match in re.finditer(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b", line):
            try:
                datetime.date(*map(int, match.groups()))
            except ValueError:
                return f"line {number}: {match.group(0)} is not a date ({first})"
    return first


def set_dotted(tree: dict, dotted: str, value: object) -> None:
    """Set `value` at a dotted key ("train.epochs") of a plain config tree."""
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: {part} is not a section.")
        node = child
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, object]:
    """'train.epochs=5' -> ('train.epochs', 5): the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: write key=value, e.g. --set train.epochs=5.")
    key, raw = text.split("=", 1)
    try:
        return key.strip(), yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: the value is not valid YAML ({exc}).") from exc


def _config_file(path: str | Path) -> Path:
    """The config file at `path`, or the ready config of that name shipped with the package."""
    found = ready_file(path)
    if found is not None:
        return found
    raise ConfigError(f"{path}: no such config file. Ready configs are in {CONFIG_DIR} "
                      f"(name one, e.g. --config lstm_long_short).")


def _code_near(spec: object, folder: Path) -> object:
    """"file.py:name" with the file beside the config file, made absolute."""
    if not isinstance(spec, str) or ".py:" not in spec:
        return spec
    file, _, name = spec.rpartition(":")
    if Path(file).is_absolute() or not (folder / file).is_file():
        return spec
    return f"{(folder / file).resolve()}:{name}"


def _paths_from(tree: dict, folder: Path) -> None:
    """Make a config file's relative data paths absolute when they exist beside the file,
    and the code files it names (model.class, features.extra)."""
    model, features = tree.get("model"), tree.get("features")
    if isinstance(model, dict):
        for key in ("class", "kind"):
            if key in model:
                model[key] = _code_near(model[key], folder)
    if isinstance(features, dict) and isinstance(features.get("extra"), list):
        features["extra"] = [_code_near(spec, folder) for spec in features["extra"]]
    data = tree.get("data")
    if not isinstance(data, dict):
        return

    def near(value: object) -> object:
        if isinstance(value, str) and not Path(value).is_absolute() and (folder / value).exists():
            return str((folder / value).resolve())
        return value

    def near_entry(value: object) -> object:
        if not isinstance(value, str):
            return value
        ticker, path = split_source(value)
        if path == value:
            return near(value)
        moved = near(path)
        return value if moved == path else f"{ticker}={moved}"

    if isinstance(data.get("paths"), list):
        data["paths"] = [near_entry(p) for p in data["paths"]]
    for key in ("macro", "sentiment", "sectors"):
        if key in data:
            data[key] = near(data[key])


@functools.lru_cache(maxsize=16)
def _read_tree(path: str, _mtime_ns: int, _size: int) -> dict:
    """A config file's mapping, data paths made absolute; parsed once per file version (a
    sweep builds an experiment per point from one base file)."""
    file = Path(path)
    text = file.read_text()
    try:
        loaded = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: e.g. a date like 2008-02-31
        raise ConfigError(f"{file}: not valid YAML ({yaml_problem(text, exc)}).") from exc
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{file}: the top level must be a mapping (key: value).")
    _paths_from(loaded, file.parent)
    return loaded


def load_config(path: str | Path | None = None, overrides: typing.Sequence[str] = (),
                **top: object) -> ExperimentConfig:
    """The experiment from a YAML file (or the defaults), with `key=value` overrides applied.

    `path` may also name a ready config ("lstm_long_short"). Data paths in the file are
    read relative to the file first (see `resolve_path` for the rest).
    """
    tree: dict = {}
    if path is not None:
        path = _config_file(path)
        stat = path.stat()
        tree = copy.deepcopy(_read_tree(str(path.resolve()), stat.st_mtime_ns, stat.st_size))
    for item in overrides:
        key, value = parse_override(item)
        set_dotted(tree, key, value)
    for key, value in top.items():
        if value is not None:
            set_dotted(tree, key, value)
    try:
        return _build(ExperimentConfig, tree, "")
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}" if path is not None else str(exc)) from None


def config_from_dict(tree: dict) -> ExperimentConfig:
    """An experiment from plain data (what `ExperimentConfig.to_dict` gives), checked."""
    return _build(ExperimentConfig, copy.deepcopy(tree), "")


def dump_config(config: ExperimentConfig) -> str:
    """The resolved config as YAML (what a run folder's config.yaml holds)."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def resolve_path(path: str | Path) -> Path:
    """A data path: as given if it exists from here, else the file shipped with the package
    ("data/AAPL.csv", said in a DataWarning), else as given (the loader then names it in
    its error)."""
    path = Path(path)
    if path.is_absolute() or path.exists():
        return path
    sample = shipped(path)
    if sample is None:
        return path
    warnings.warn(f"{path} is not in the current directory ({Path.cwd()}); using the "
                  f"package's sample file {sample}. Give an absolute path, or run from the "
                  f"folder that holds your file, to use your own.", DataWarning, stacklevel=2)
    return sample
