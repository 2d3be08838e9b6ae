"""A sweep file: which experiment, which keys to vary and how, how to search, what to rank by.

```yaml
base: default.yaml            # a config file (relative to this file) or a ready config name
set: {data.start: 2004-01-01}  # fixed changes to the base, dotted keys as in --set
vary:                          # the searched keys, dotted keys as in --set
  model.params.hidden_size: [16, 32]                             # a list of values
  strategy.entry_threshold: {low: 0.0, high: 0.002, step: 0.0005}   # a range
search: grid                   # grid | random | tpe (Optuna's Bayesian search)
trials: 50                     # budget for random and tpe (grid: every point)
objective: sharpe              # any strategy metric, ranked on the in-sample span
direction: maximize
holdout: 0.25                  # last share of the trading period that ranking never sees
```

Keys under data., features., model. and train. (and device) are model-side: each
distinct model-side config is trained once and its forecasts reused by every
strategy-side point (strategy., broker.).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import yaml

from ..config import ExperimentConfig, load_config, resolve_path, yaml_problem
from ..errors import ConfigError
from ..resources import configs_dir, ready_file
from .finished import source_digest

MODEL_SIDE = ("data.", "features.", "model.", "train.", "device")
SEARCHES = ("grid", "random", "tpe")
OBJECTIVES = ("sharpe", "sortino", "calmar", "total_return", "cagr", "max_drawdown",
              "volatility", "win_rate", "exposure", "turnover", "n_trades")


@dataclass(frozen=True)
class Range:
    """A numeric range to search: uniform (or log-uniform) between low and high, on a step."""

    low: float
    high: float
    step: float | None = None
    log: bool = False
    integer: bool = False

    def __post_init__(self) -> None:
        if self.low > self.high:
            raise ConfigError(f"Range: low={self.low!r} is above high={self.high!r}.")
        if self.step is not None and not self.step > 0:
            raise ConfigError(f"Range: step={self.step!r} must be > 0.")
        if self.log and not self.low > 0:
            raise ConfigError(f"Range: log=True needs low > 0 (got {self.low!r}).")

    def grid(self, key: str) -> list:
        if self.step is None:
            raise ConfigError(f"vary.{key}: a grid needs a step for a range ({{low, high, "
                              f"step}}) or a list of values.")
        count = int(np.floor((self.high - self.low) / self.step + 1e-9)) + 1
        values = [self.low + i * self.step for i in range(count)]
        return [round(v) for v in values] if self.integer else [
            round(v, 12) for v in values]

    def draw(self, rng: np.random.Generator) -> float | int:
        if self.log:
            value = float(np.exp(rng.uniform(np.log(self.low), np.log(self.high))))
        else:
            value = float(rng.uniform(self.low, self.high))
        if self.step:
            value = self.low + round((value - self.low) / self.step) * self.step
            value = min(value, self.high)
        return round(value) if self.integer else round(value, 12)


@dataclass(frozen=True)
class SweepConfig:
    """One sweep: the base experiment, the searched keys, the search and the ranking."""

    vary: dict = field(default_factory=dict)  # dotted key -> list of values or Range
    base: str | None = None
    set: dict = field(default_factory=dict)
    search: str = "grid"
    trials: int | None = None
    objective: str = "sharpe"
    direction: str = "maximize"
    holdout: float = 0.25
    seed: int = 0
    workers: int = 1
    backend: str = "local"
    engine: str = "auto"  # auto: the fast evaluator where it applies | fast | backtrader
    recheck: int = 5  # the top k points the fast evaluator served, re-run through backtrader
    track: str | None = None  # mlflow: log the sweep (a run per trial) to MLflow
    base_dir: str = "."
    source: str = ""  # digest of the sweep file it was read from (finished.source_digest)

    def __post_init__(self) -> None:
        if not self.vary:
            raise ConfigError("sweep: vary is empty; name at least one key to search.")
        if self.search not in SEARCHES:
            raise ConfigError(f"sweep.search={self.search!r}; use one of {list(SEARCHES)}.")
        if self.search != "grid" and not (self.trials and self.trials > 0):
            raise ConfigError(f"sweep.trials: a {self.search} search needs a budget (trials: N).")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"sweep.objective={self.objective!r}; use a strategy metric: "
                              f"{list(OBJECTIVES)}.")
        if self.direction not in ("maximize", "minimize"):
            raise ConfigError(f"sweep.direction={self.direction!r}; use maximize or minimize.")
        if not 0.0 <= self.holdout < 0.9:
            raise ConfigError(f"sweep.holdout={self.holdout} must be in [0, 0.9).")
        if self.workers < 1:
            raise ConfigError(f"sweep.workers={self.workers} must be >= 1.")
        if self.engine not in ("auto", "fast", "backtrader"):
            raise ConfigError(f"sweep.engine={self.engine!r}; use auto, fast or backtrader.")
        if self.recheck < 0:
            raise ConfigError(f"sweep.recheck={self.recheck} must be >= 0.")
        if self.track not in (None, "none", "mlflow"):
            raise ConfigError(f"sweep.track={self.track!r}; use mlflow (or leave it out).")
        if self.backend not in ("local", "ray"):
            raise ConfigError(f"sweep.backend={self.backend!r}; use local or ray.")
        for key, spec in self.vary.items():
            if isinstance(spec, list) and not spec:
                raise ConfigError(f"vary.{key}: the list of values is empty.")
        # every key must exist and take a value of its kind
        self.experiment({k: v[0] if isinstance(v, list) else (round(v.low) if v.integer
                                                                else float(v.low))
                         for k, v in self.vary.items()})

    # -- the search space ---------------------------------------------------------
    def values(self, key: str) -> list:
        spec = self.vary[key]
        return list(spec) if isinstance(spec, list) else spec.grid(key)

    def model_side(self, key: str) -> bool:
        return key.startswith(MODEL_SIDE)

    def keys(self) -> list[str]:
        """Searched keys, model-side first (so a grid's points share forecasts in runs)."""
        return sorted(self.vary, key=lambda k: (not self.model_side(k), list(self.vary).index(k)))

    def plan(self) -> list[dict] | None:
        """Every point, in order, for grid and random searches (None for tpe: it adapts)."""
        keys = self.keys()
        if self.search == "grid":
            points = [dict(zip(keys, combo, strict=True))
                      for combo in itertools.product(*(self.values(k) for k in keys))]
            return points[:self.trials] if self.trials else points
        if self.search == "random":
            points = []
            for number in range(self.trials):
                rng = np.random.default_rng([self.seed, number])  # a point per trial number
                points.append({k: (self.vary[k][int(rng.integers(len(self.vary[k])))]
                                   if isinstance(self.vary[k], list) else self.vary[k].draw(rng))
                               for k in keys})
            return points
        return None

    def budget(self) -> int:
        plan = self.plan()
        return len(plan) if plan is not None else int(self.trials)

    def distributions(self) -> dict:
        """Optuna distributions of the searched keys (the ledger records params with them)."""
        import optuna

        out = {}
        for key in self.keys():
            spec = self.vary[key]
            if isinstance(spec, list):
                out[key] = optuna.distributions.CategoricalDistribution(spec)
            elif spec.integer:
                out[key] = optuna.distributions.IntDistribution(
                    int(spec.low), int(spec.high), log=spec.log, step=int(spec.step or 1))
            else:
                out[key] = optuna.distributions.FloatDistribution(
                    spec.low, spec.high, log=spec.log, step=None if spec.log else spec.step)
        return out

    # -- experiments --------------------------------------------------------------
    def experiment(self, params: dict) -> ExperimentConfig:
        """The experiment of one point: the base, the fixed changes, then the point."""
        base = None
        if self.base is not None:
            base = Path(self.base_dir) / self.base
            base = base if base.exists() else self.base
        return load_config(base, (), **{**self.set, **params})

    def model_key(self, config: ExperimentConfig, tree: dict | None = None) -> str:
        """Identifies the model side of an experiment: its settings and its data's content
        (`tree`: the experiment's `to_dict()`, when the caller has it already)."""
        tree = tree or config.to_dict()
        side = {k: tree[k] for k in ("data", "features", "model", "train", "device")}
        digest = hashlib.sha256(json.dumps(side, sort_keys=True, default=str).encode())
        data = config.data
        for path in (*data.sources().values(), data.macro, data.sentiment, data.sectors):
            if path:
                resolved = resolve_path(path)
                digest.update(_content_digest(str(resolved), *_version(resolved))
                              if resolved.is_file() else str(path).encode())
        return digest.hexdigest()[:16]

    def fingerprint(self) -> str:
        """A hash of what the sweep searches (a folder holds one sweep)."""
        plain = asdict(self)
        for runtime in ("workers", "backend", "engine", "recheck", "track"):
            plain.pop(runtime)
        plain.pop("base_dir")
        plain.pop("source")
        return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()
                              ).hexdigest()[:16]


def _version(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=64)
def _content_digest(path: str, _mtime_ns: int, _size: int) -> bytes:
    """A data file's hash, read once per version of the file (a sweep keys every point)."""
    return hashlib.sha256(Path(path).read_bytes()).digest()


_SCALARS = {"base": (str,), "search": (str,), "objective": (str,), "direction": (str,),
            "track": (str,),
            "engine": (str,), "backend": (str,), "trials": (int,), "seed": (int,),
            "workers": (int,), "recheck": (int,), "holdout": (int, float)}
_TYPE_WORDS = {str: "a string", int: "a whole number", float: "a number"}


def _is(value: object, kinds: tuple[type, ...]) -> bool:
    return isinstance(value, kinds) and not isinstance(value, bool)


def _range(path: Path, key: str, spec: dict) -> Range:
    """A `{low, high[, step, log, type]}` range, every rule checked with the key named."""
    where = f"{path}: vary.{key}"
    extra = sorted(set(spec) - {"low", "high", "step", "log", "type"})
    if extra or not {"low", "high"} <= set(spec):
        raise ConfigError(f"{where} must be a list of values or {{low, high[, step, log, "
                          f"type: int|float]}}" + (f"; unknown key(s) {extra}" if extra else
                                                   "; low and high are both needed") + ".")
    number_type = spec.get("type")
    if number_type not in (None, "int", "float"):
        raise ConfigError(f"{where}.type={number_type!r}; use int or float (or leave it out).")
    for part in ("low", "high", "step"):
        if part in spec and spec[part] is not None and not _is(spec[part], (int, float)):
            raise ConfigError(f"{where}.{part}={spec[part]!r} must be a number.")
    low, high, step = spec["low"], spec["high"], spec.get("step")
    if low > high:
        raise ConfigError(f"{where}: low={low!r} is above high={high!r}; swap them.")
    if step is not None and step <= 0:
        raise ConfigError(f"{where}.step={step!r} must be > 0 (the distance between grid "
                          f"values), or left out for a random or tpe search.")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}.log={log!r} must be true or false.")
    if log and low <= 0:
        raise ConfigError(f"{where}: log: true needs low > 0 (got {low!r}); give a positive "
                          f"low or drop log.")
    if log and step is not None:
        raise ConfigError(f"{where}: log: true takes no step; drop one of them.")
    integer = number_type == "int" or (number_type is None and all(isinstance(spec[k], int)
                                                     for k in ("low", "high")))
    if integer and step is not None and step != int(step):
        raise ConfigError(f"{where}.step={step!r} must be a whole number for an int range.")
    return Range(low, high, step, log, integer)


def sweep_file(path: str | Path) -> Path:
    """The sweep file at `path`, or the ready sweep of that name (strategies/NAME.yaml)."""
    found = ready_file(path)
    if found is not None:
        return found
    raise ConfigError(f"{path}: no such sweep file. Ready sweeps are in {configs_dir()} "
                      f"(name one, e.g. --config sweep_example).")


def load_sweep(path: str | Path, **overrides: object) -> SweepConfig:
    """Read a sweep file; `overrides` (workers=..., backend=...) replace its top-level keys.

    Every key is checked before anything is written: a bad file is one ConfigError that
    names the file, the key and the fix.
    """
    path = sweep_file(path)
    text = path.read_text()
    try:
        tree = yaml.safe_load(text) or {}
    except (yaml.YAMLError, ValueError) as exc:
        raise ConfigError(f"{path}: not valid YAML ({yaml_problem(text, exc)}).") from exc
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: the top level must be a mapping (key: value).")
    allowed = {f for f in SweepConfig.__dataclass_fields__ if f not in ("base_dir", "source")}
    unknown = [k for k in tree if k not in allowed]
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; allowed: {sorted(allowed)}.")
    for key, kinds in _SCALARS.items():
        value = tree.get(key)
        if value is not None and not _is(value, kinds):
            raise ConfigError(f"{path}: {key}={value!r} must be {_TYPE_WORDS[kinds[-1]]}"
                              + (" (e.g. trials: 10)" if key == "trials" else "")
                              + (" (a share of the trading period, e.g. holdout: 0.25)"
                                 if key == "holdout" else "") + ".")
    if "trials" in tree and tree["trials"] is not None and tree["trials"] < 1:
        raise ConfigError(f"{path}: trials={tree['trials']!r} must be >= 1.")
    for key in ("vary", "set"):
        if tree.get(key) is not None and not isinstance(tree[key], dict):
            example = ("vary:\n  strategy.entry_threshold: [0.0, 0.001]" if key == "vary"
                       else "set:\n  train.epochs: 5")
            raise ConfigError(f"{path}: {key} must be a mapping of dotted keys to "
                              f"{'values to search' if key == 'vary' else 'values'}, got a "
                              f"{type(tree[key]).__name__}; write it as {example!r}.")
    vary = {}
    for key, spec in (tree.get("vary") or {}).items():
        if isinstance(spec, dict):
            vary[key] = _range(path, key, spec)
        elif isinstance(spec, list):
            vary[key] = spec
        else:
            raise ConfigError(f"{path}: vary.{key}={spec!r} must be a list of values or a "
                              f"range {{low, high[, step]}}.")
    tree["vary"] = vary
    tree["set"] = dict(tree.get("set") or {})
    tree.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return SweepConfig(**tree, base_dir=str(path.parent), source=source_digest(path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
