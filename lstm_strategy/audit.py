"""`lstm-backtest audit`: prove that a config, with its own features and model, does not
look ahead, or name what does.

It runs the experiment's features and walk-forward forecasts as they are, then again on
copies of the data cut after several dates, and on copies whose future was changed:
prices after a date, exogenous values after they were published, headlines after they
were stamped. A value at bar t that moves when only data from after t moved (or was cut)
is a leak, and the audit names it: which feature, fold model or forecast, the check that
caught it, the first date it shows at, and how big it is. Beside that it checks what no
cut can reach: that the model's output at row t stays put when rows after t change (a
bidirectional layer or a centred window moves it), and that streaming gives the batch
forecasts.

What it proves: on these data, at these cuts and perturbations, nothing at or before the
date moved. What it does not: that a leak shows at every date (it samples cuts; a leak
that only bites at some dates can hide between them, so `--thorough` takes more), or
anything about data or code paths the run does not take.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from .config import ExperimentConfig
from .data import stamp
from .experiment import (
    ExperimentInputs,
    experiment_features,
    forecast_all,
    load_experiment_inputs,
    seed_everything,
)
from .features import exog_available_at, make_target, warmup_bars
from .forecaster import resolve_device, torch_threads
from .models import build_model
from .models.base import CHUNK_BARS
from .sentiment import bar_closes

MODEL_TOLERANCE = 1e-6  # a causal model's past outputs move by rounding at most
STREAM_TOLERANCE = 1e-5  # streaming vs batch forecasts (float32 steps vs chunks)


@dataclass
class Finding:
    """One value that changed before it could have been known."""

    check: str  # truncation | future prices | exogenous | news | model causality | stream
    component: str  # "feature rsi (AAPL)", "fold 3 model (AAPL)", "forecast (AAPL)", ...
    first_date: pd.Timestamp
    size: float  # the largest change seen at or before the date (NaN: a value vs NaN)
    detail: str


@dataclass
class AuditResult:
    """What the audit ran and what it found (clean when `findings` is empty)."""

    cuts: list[pd.Timestamp]
    checks: list[str]
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.findings

    def table(self) -> pd.DataFrame:
        """One row per culprit: its earliest finding per check."""
        rows = [{"check": f.check, "component": f.component, "first_date": stamp(f.first_date),
                 "size": f.size, "detail": f.detail} for f in self.findings]
        frame = pd.DataFrame(rows, columns=["check", "component", "first_date", "size",
                                            "detail"])
        return frame.sort_values(["component", "first_date"], kind="stable").drop_duplicates(
            ["check", "component"]).reset_index(drop=True)


def _first_change(before: pd.DataFrame, after: pd.DataFrame, until: pd.Timestamp | None
                  ) -> dict[str, tuple[pd.Timestamp, float]]:
    """Per column: the first date (<= until) where the two frames differ in value or in
    NaN pattern, and the largest difference there; bit for bit."""
    common = before.index.intersection(after.index)
    if until is not None:
        common = common[common <= until]
    a, b = before.loc[common], after.loc[common, before.columns]
    out = {}
    for name in before.columns:
        x, y = a[name].to_numpy(float), b[name].to_numpy(float)
        moved = (np.isnan(x) != np.isnan(y)) | (~np.isnan(x) & ~np.isnan(y) & (x != y))
        if moved.any():
            both = ~np.isnan(x) & ~np.isnan(y)
            gaps = np.abs(x - y)[both]
            size = float(gaps.max()) if both.any() and gaps.max() > 0 else math.nan
            out[str(name)] = (common[int(np.argmax(moved))], size)  # NaN: value vs NaN
    return out


def _cut_dates(index: pd.DatetimeIndex, start: int, count: int, seed: int) -> list:
    """`count` dates spread over index[start:-1], jittered with a fixed seed."""
    rng = np.random.default_rng(seed)
    usable = np.arange(start, len(index) - 1)
    if len(usable) == 0:
        return []
    edges = np.linspace(0, len(usable), count + 1).astype(int)
    picks = {int(usable[rng.integers(a, max(a + 1, b))]) for a, b in itertools.pairwise(edges)}
    return [index[i] for i in sorted(picks)]


def _changed_future(bars: pd.DataFrame, after: pd.Timestamp, seed: int) -> pd.DataFrame:
    """The bars with every price and volume after `after` changed (a valid OHLC bar)."""
    rng = np.random.default_rng(seed)
    out = bars.copy()
    later = out.index > after
    factor = np.exp(np.cumsum(rng.normal(0.0, 0.02, int(later.sum()))))
    for col in ("Open", "High", "Low", "Close"):
        out.loc[later, col] = out.loc[later, col].to_numpy() * factor
    out.loc[later, "Volume"] = out.loc[later, "Volume"].to_numpy() * rng.uniform(
        0.5, 1.5, int(later.sum()))
    return out


def audit(config: ExperimentConfig, *, cuts: int = 3, thorough: bool = False,
          epochs: int | None = 2, say: Callable[[str], None] = lambda line: None
          ) -> AuditResult:
    """Audit one experiment (see the module docstring); `cuts` cut dates (8 with
    `thorough`), models trained `epochs` epochs (None: as configured; a leak is a leak at
    any size)."""
    if thorough:
        cuts = max(cuts, 8)
    if epochs is not None and config.train.epochs > epochs:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train,
                                                                       epochs=epochs))
    with torch_threads(config.threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _audit(config, cuts, say)


def _audit(config: ExperimentConfig, n_cuts: int, say: Callable[[str], None]) -> AuditResult:
    seed_everything(config.train.seed)
    inputs = load_experiment_inputs(config)
    features = experiment_features(config, inputs)
    first = next(iter(inputs.bars))
    calendar = inputs.bars[first].index
    warm = max(warmup_bars(f) for f in features.values())
    start = warm + config.train.min_train_bars + config.train.step
    cut_dates = _cut_dates(calendar, start, n_cuts, config.train.seed)
    result = AuditResult(cut_dates, [])
    say(f"cuts at {', '.join(stamp(d) for d in cut_dates)}")

    def found(check: str, component: str, date: pd.Timestamp, size: float, detail: str) -> None:
        result.findings.append(Finding(check, component, date, size, detail))

    # -- features: cut copies, and copies with another future ---------------------------
    result.checks.append("features: truncation")
    for cut in cut_dates:
        short = dataclasses.replace(inputs, bars={t: f.loc[:cut] for t, f in inputs.bars.items()})
        for ticker, frame in experiment_features(config, short).items():
            for name, (date, size) in _first_change(features[ticker], frame, cut).items():
                found("truncation", f"feature {name} ({ticker})", date, size,
                      f"changed when the data were cut after {stamp(cut)}")
    result.checks.append("features: future prices")
    for k, cut in enumerate(cut_dates):
        moved = dataclasses.replace(inputs, bars={t: _changed_future(f, cut, k)
                                                  for t, f in inputs.bars.items()})
        for ticker, frame in experiment_features(config, moved).items():
            for name, (date, size) in _first_change(features[ticker], frame, cut).items():
                found("future prices", f"feature {name} ({ticker})", date, size,
                      f"changed when prices after {stamp(cut)} changed")
    if inputs.exogenous is not None:
        result.checks.append("features: exogenous after publication")
        _exogenous_check(config, inputs, features, cut_dates, found)
    if inputs.news is not None:
        result.checks.append("features: headlines after their time")
        _news_check(config, inputs, features, cut_dates, found)

    # -- the model: causality and streaming, on its own rows ----------------------------
    result.checks.append("model: causality")
    _model_checks(config, features, found)

    # -- walk-forward forecasts: cut copies of the whole experiment ---------------------
    result.checks.append("forecasts: truncation")
    say("walk-forward on the whole data")
    full, _ = _forecasts(config, inputs.bars, features)
    for cut in cut_dates:
        say(f"walk-forward on the data cut after {stamp(cut)}")
        bars = {t: f.loc[:cut] for t, f in inputs.bars.items()}
        short, _ = _forecasts(config, bars, experiment_features(
            config, dataclasses.replace(inputs, bars=bars)))
        for ticker in full:
            before = full[ticker].predictions.rename("forecast").to_frame()
            after = short[ticker].predictions.rename("forecast").to_frame()
            for _, (date, size) in _first_change(before, after, cut).items():
                fold = _fold_of(full[ticker], date)
                found("truncation", f"forecast ({ticker})", date, size,
                      f"fold {fold}'s model forecast it; changed when the data were cut "
                      f"after {stamp(cut)}")
    result.notes = inputs.notes
    return result


def _forecasts(config: ExperimentConfig, bars: dict, features: dict) -> tuple[dict, object]:
    targets = {t: make_target(bars[t]["Close"], config.train.horizon) for t in bars}
    seed_everything(config.train.seed)
    results, _, _ = forecast_all(config, features, targets, use_cache=False, progress=False)
    return results, targets


def _fold_of(result: object, date: pd.Timestamp) -> int:
    """The fold whose model made the forecast for `date`."""
    for fold in result.folds:
        if fold.retrain_date <= date <= fold.end_date:
            return fold.index
    return -1


def _exogenous_check(config: ExperimentConfig, inputs: ExperimentInputs, features: dict,
                     cut_dates: list, found: Callable) -> None:
    """Change every exogenous value dated after a cut; nothing at a bar before such a value
    was published (its date's end plus data.macro_lag) may move."""
    exog = inputs.exogenous
    for cut in cut_dates:
        later = exog.index > cut
        if not later.any():
            continue
        moved = exog.copy()
        moved.loc[later] = moved.loc[later] * 1.5 + 1.0
        published = exog_available_at(exog.index[later][:1], config.data.macro_lag)[0]
        changed = experiment_features(config, dataclasses.replace(inputs, exogenous=moved))
        _moves_before(features, changed, lambda index, at=published: index < at, "exogenous", found,
                      f"moved when exogenous values dated after {stamp(cut)} changed; the "
                      f"first of them is published at {published} (data.macro_lag "
                      f"{config.data.macro_lag})")

def _news_check(config: ExperimentConfig, inputs: ExperimentInputs, features: dict,
                cut_dates: list, found: Callable) -> None:
    """Change every headline stamped after a bar's close; no bar that closed before the
    first changed headline may move."""
    news = inputs.news
    for cut in cut_dates:
        index = inputs.bars[next(iter(inputs.bars))].index
        close = bar_closes(index[index <= cut][-1:], config.data.close_time)[0]
        later = news["timestamp"] > close
        if not later.any():
            continue
        moved = news.copy()
        moved.loc[later, "score"] = -moved.loc[later, "score"] + 0.5
        moved.loc[later, "score"] = moved.loc[later, "score"].clip(-1, 1)
        first_stamp = news.loc[later, "timestamp"].min()
        changed = experiment_features(config, dataclasses.replace(inputs, news=moved))
        _moves_before(features, changed,
                      lambda index, at=first_stamp: bar_closes(index, config.data.close_time) < at,
                      "news", found,
                      f"moved when headlines stamped from {first_stamp} on changed; that bar "
                      f"closed before them ({config.data.close_time}, {config.data.clock_tz})")


def _moves_before(features: dict, changed: dict, known_before: Callable, check: str,
                  found: Callable, detail: str) -> None:
    """Report each feature of `changed` that moved at a bar where `known_before(index)`
    says the changed input could not have been known yet."""
    for ticker, frame in changed.items():
        before = frame.index[known_before(frame.index)]
        if len(before) == 0:
            continue
        for name, (date, size) in _first_change(features[ticker], frame, before[-1]).items():
            found(check, f"feature {name} ({ticker})", date, size, detail)

def _model_checks(config: ExperimentConfig, features: dict, found: Callable) -> None:
    """A freshly built model of the configured class on the first ticker's complete rows:
    change the rows after a point, and no output at or before it may move; stream them,
    and the outputs must be the batch ones."""
    if config.model.multi_asset:
        frame = pd.concat(features, axis=1).dropna()
        n_features = next(iter(features.values())).shape[1]
        values = frame.to_numpy(np.float32).reshape(len(frame), len(features), n_features)
    else:
        frame = next(iter(features.values())).dropna()
        n_features = frame.shape[1]
        values = frame.to_numpy(np.float32)
    values = (values - values.mean(axis=0)) / np.where(values.std(axis=0) > 0,
                                                       values.std(axis=0), 1.0)
    rows = min(len(values), 2 * CHUNK_BARS + 60)
    x = torch.as_tensor(values[:rows], dtype=torch.float32)
    index = frame.index[:rows]
    device = resolve_device("cpu")
    torch.manual_seed(config.train.seed)
    assets = len(features) if config.model.multi_asset else 1
    model = build_model(n_features, config.model, assets).to(device).eval()
    if model.uses_graph:  # every asset linked, so the graph layers take part
        model.set_graph(np.ones((assets, assets)) - np.eye(assets))
    name = config.model.model_class.__name__
    point = rows // 2 + 7  # inside a chunk, so a leak within one call shows
    with torch.no_grad():
        base = model.forecast_segment(x, CHUNK_BARS, CHUNK_BARS)
        noisy = x.clone()
        noisy[point + 1:] = noisy[point + 1:] + torch.randn_like(noisy[point + 1:]) * 3.0
        moved = model.forecast_segment(noisy, CHUNK_BARS, CHUNK_BARS)
    a, b = base[:point + 1].reshape(point + 1, -1).numpy(), moved[:point + 1].reshape(
        point + 1, -1).numpy()
    same_nan = np.isnan(a) == np.isnan(b)
    diff = np.where(np.isnan(a) | np.isnan(b), 0.0, np.abs(a - b))
    bad = (~same_nan).any(axis=1) | (diff > MODEL_TOLERANCE * (1 + np.abs(
        np.nan_to_num(a)))).any(axis=1)
    if bad.any():
        found("model causality", f"model {name}", index[int(np.argmax(bad))], float(diff.max()),
              f"its output at {stamp(index[int(np.argmax(bad))])} moved when only rows after "
              f"{stamp(index[point])} changed: the model reads the future (a bidirectional "
              f"layer, a centred window, statistics over the whole input)")
    if config.model.multi_asset:
        return
    with torch.no_grad():
        state = model.stream_start()
        streamed = []
        for row in x[:min(rows, 300)]:
            out, state = model.stream_step(row, state)
            streamed.append(float(out))
    streamed = np.array(streamed)
    batch = base[:len(streamed)].numpy()
    both = ~np.isnan(streamed) & ~np.isnan(batch)
    gap = np.abs(streamed - batch)
    off = (np.isnan(streamed) != np.isnan(batch)) | (both & (gap > STREAM_TOLERANCE * (
        1 + np.abs(np.nan_to_num(batch)))))
    if off.any():
        first = int(np.argmax(off))
        found("stream", f"model {name}", index[first], float(np.nanmax(gap)),
              f"streaming one row at a time gives other forecasts than the batch from "
              f"{stamp(index[first])} on: the two paths do not compute the same model")
