"""Causal features from `ta` indicators, returns, volatility and exogenous series.

Every feature at bar t uses only bars <= t (proven by truncation tests). Values are made
scale-free (ratios to price, oscillators / 100) so one model can see any price level.
The forecast target lives apart from the features, in `make_target`.

`ta` indicators left out because they fail the truncation test (see
tests/test_features.py): KST (`trend_kst*`: its ROCs are padded with the mean of the
whole series) and the "visual" Ichimoku spans (shifted into the future by design).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
import ta

from .data import gap_after
from .errors import ConfigError, DataError

NON_CAUSAL_TA = (
    "trend_kst", "trend_kst_diff", "trend_kst_sig",
    "trend_visual_ichimoku_a", "trend_visual_ichimoku_b",
)

FEATURE_SETS = ("default", "alpha158")
VOLUME_FEATURES = ("obv_slope", "volume_z")  # left out for data without volume

DEFAULT_FEATURES = (
    "log_ret_1", "log_ret_5", "log_ret_20", "realized_vol",
    "rsi", "macd", "macd_hist", "bb_pband", "bb_width", "atr",
    "obv_slope", "ema_dist", "sma_dist", "stoch_k", "stoch_d",
    "adx", "cci", "roc", "volume_z",
)


@dataclass(frozen=True)
class FeatureConfig:
    """Which features to build and their windows (bars)."""

    names: tuple[str, ...] = DEFAULT_FEATURES
    rsi_window: int = 14
    macd_fast: int = 12
    macd_slow: int = 26
    macd_signal: int = 9
    bb_window: int = 20
    bb_dev: float = 2.0
    atr_window: int = 14
    obv_window: int = 20
    ema_window: int = 20
    sma_window: int = 50
    stoch_window: int = 14
    stoch_smooth: int = 3
    adx_window: int = 14
    cci_window: int = 20
    roc_window: int = 10
    vol_window: int = 20
    set: str = "default"  # default (names above) | alpha158 (Qlib's Alpha158 family)
    extra: tuple[str, ...] = ()  # your feature functions: "mypkg.features:fn", "f.py:fn"

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "extra", tuple(self.extra))
        if self.set not in FEATURE_SETS:
            raise ConfigError(f"features.set={self.set!r}; choose one of {list(FEATURE_SETS)}.")
        for spec in self.extra:
            user_feature(spec)
        unknown = [n for n in self.names if n not in FEATURES]
        if unknown:
            raise ConfigError(f"features.names: unknown feature(s) {unknown}; choose from "
                              f"{sorted(FEATURES)}.")
        if not self.names:
            raise ConfigError("features.names is empty; name at least one feature.")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith(("_window", "_fast", "_slow", "_signal", "_smooth")) and value < 1:
                raise ConfigError(f"features.{f.name}={value} must be >= 1 bar.")
        if self.bb_dev <= 0:
            raise ConfigError(f"features.bb_dev={self.bb_dev} must be > 0.")


def _log_ret(close: pd.Series, bars: int) -> pd.Series:
    return np.log(close / close.shift(bars))


def _ta_warmup_zero(series: pd.Series, bars: int) -> pd.Series:
    """Blank the first `bars` values: some `ta` indicators emit 0 instead of NaN while warming up."""
    out = series.astype("float64").copy()
    out.iloc[:bars] = np.nan
    return out


def _obv_slope(o: pd.DataFrame, c: FeatureConfig) -> pd.Series:
    obv = ta.volume.OnBalanceVolumeIndicator(o["Close"], o["Volume"]).on_balance_volume()
    volume_sum = o["Volume"].rolling(c.obv_window).sum()
    return (obv - obv.shift(c.obv_window)) / volume_sum.replace(0.0, np.nan)


def _volume_z(o: pd.DataFrame, c: FeatureConfig) -> pd.Series:
    logv = np.log1p(o["Volume"])
    mean = logv.rolling(c.vol_window).mean()
    std = logv.rolling(c.vol_window).std()
    return (logv - mean) / std.replace(0.0, np.nan)


FeatureFn = Callable[[pd.DataFrame, FeatureConfig], pd.Series]

FEATURES: dict[str, FeatureFn] = {
    "log_ret_1": lambda o, c: _log_ret(o["Close"], 1),
    "log_ret_5": lambda o, c: _log_ret(o["Close"], 5),
    "log_ret_20": lambda o, c: _log_ret(o["Close"], 20),
    "realized_vol": lambda o, c: _log_ret(o["Close"], 1).rolling(c.vol_window).std()
    * np.sqrt(252),
    "rsi": lambda o, c: ta.momentum.RSIIndicator(o["Close"], c.rsi_window).rsi() / 100,
    "macd": lambda o, c: ta.trend.MACD(
        o["Close"], c.macd_slow, c.macd_fast, c.macd_signal).macd() / o["Close"],
    "macd_hist": lambda o, c: ta.trend.MACD(
        o["Close"], c.macd_slow, c.macd_fast, c.macd_signal).macd_diff() / o["Close"],
    "bb_pband": lambda o, c: ta.volatility.BollingerBands(
        o["Close"], c.bb_window, c.bb_dev).bollinger_pband(),
    "bb_width": lambda o, c: ta.volatility.BollingerBands(
        o["Close"], c.bb_window, c.bb_dev).bollinger_wband() / 100,
    "atr": lambda o, c: _ta_warmup_zero(ta.volatility.AverageTrueRange(
        o["High"], o["Low"], o["Close"], c.atr_window).average_true_range(),
        c.atr_window) / o["Close"],
    "obv_slope": _obv_slope,
    "ema_dist": lambda o, c: o["Close"] / ta.trend.EMAIndicator(
        o["Close"], c.ema_window).ema_indicator() - 1,
    "sma_dist": lambda o, c: o["Close"] / ta.trend.SMAIndicator(
        o["Close"], c.sma_window).sma_indicator() - 1,
    "stoch_k": lambda o, c: ta.momentum.StochasticOscillator(
        o["High"], o["Low"], o["Close"], c.stoch_window, c.stoch_smooth).stoch() / 100,
    "stoch_d": lambda o, c: ta.momentum.StochasticOscillator(
        o["High"], o["Low"], o["Close"], c.stoch_window, c.stoch_smooth).stoch_signal() / 100,
    "adx": lambda o, c: _ta_warmup_zero(ta.trend.ADXIndicator(
        o["High"], o["Low"], o["Close"], c.adx_window).adx(), 2 * c.adx_window) / 100,
    "cci": lambda o, c: ta.trend.CCIIndicator(
        o["High"], o["Low"], o["Close"], c.cci_window).cci() / 100,
    "roc": lambda o, c: ta.momentum.ROCIndicator(o["Close"], c.roc_window).roc() / 100,
    "volume_z": _volume_z,
}


def user_feature(spec: str) -> Callable:
    """The function a `features.extra` entry names (ConfigError if it does not import)."""
    from .plugins import import_object

    found = import_object(spec, "features.extra")
    if not callable(found):
        raise ConfigError(f"features.extra={spec!r} is not a function of the bars.")
    return found


def _user_columns(spec: str, ohlcv: pd.DataFrame, exogenous: pd.DataFrame | None,
                  news: pd.DataFrame | None) -> dict[str, pd.Series]:
    """Columns from one user feature function: fn(bars) -> Series or DataFrame on the bars'
    index; it also gets `exogenous=` (the raw exogenous table) and `news=` (headlines as
    timestamp, ticker, score) where its signature asks for them."""
    fn = user_feature(spec)
    wanted = inspect.signature(fn).parameters
    kwargs = {k: v for k, v in (("exogenous", exogenous), ("news", news)) if k in wanted}
    out = fn(ohlcv.copy(), **kwargs)
    if isinstance(out, pd.Series):
        out = out.to_frame(out.name if out.name is not None else spec.rpartition(":")[2])
    if not isinstance(out, pd.DataFrame):
        raise DataError(f"features.extra {spec}: returned {type(out).__name__}; return a "
                        f"pandas Series or DataFrame on the bars' index.")
    if not out.index.equals(ohlcv.index):
        raise DataError(f"features.extra {spec}: its index is not the bars' index "
                        f"({len(out)} rows for {len(ohlcv)} bars); return one row per bar "
                        f"(reindex(bars.index) keeps the rows, shift() keeps them causal).")
    columns = {}
    for name in out.columns:
        values = pd.to_numeric(out[name], errors="coerce")
        if values.notna().sum() < out[name].notna().sum():
            raise DataError(f"features.extra {spec}: column {name!r} is not numeric.")
        columns[str(name)] = values.replace([np.inf, -np.inf], np.nan).astype("float64")
    return columns


def build_features(
    ohlcv: pd.DataFrame,
    config: FeatureConfig | None = None,
    *,
    exogenous: pd.DataFrame | None = None,
    exog_lag: str = "0D",
    exog_prefix: str = "",
    exog_transform: str = "level",
    news: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Feature frame on the bars' index: one column per feature, warm-up rows left NaN.

    The set (`config.set`: the default `ta` features of `config.names`, or Qlib's
    Alpha158), then your functions (`config.extra`). `exogenous` (numeric series by
    date, e.g. macro) joins as-of by availability time (see `join_exogenous`);
    `exog_lag` is the publication lag, a pandas offset such as "45D".
    `exog_transform="diff"` uses bar-to-bar changes instead of levels. `news` reaches
    only the extra functions that ask for it. Use `warmup_bars()` to learn how many
    leading rows are incomplete (it counts the extra columns' warm-up too).
    """
    config = config or FeatureConfig()
    missing = [c for c in ("Open", "High", "Low", "Close", "Volume") if c not in ohlcv.columns]
    if missing:
        raise DataError(f"build_features needs OHLCV columns; missing {missing}. "
                        f"Load the data with load_ohlcv().")
    columns = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        if config.set == "alpha158":
            from .alpha158 import alpha158

            columns.update(alpha158(ohlcv, volume=ohlcv.attrs.get("volume", True)))
        else:
            for name in config.names:
                series = FEATURES[name](ohlcv, config)
                columns[name] = series.replace([np.inf, -np.inf], np.nan).astype("float64")
        for spec in config.extra:
            for name, values in _user_columns(spec, ohlcv, exogenous, news).items():
                if name in columns:
                    raise DataError(f"features.extra {spec}: column {name!r} is already a "
                                    f"feature; give it another name.")
                columns[name] = values
    features = pd.DataFrame(columns, index=ohlcv.index)
    if exogenous is not None:
        joined = join_exogenous(ohlcv.index, exogenous, lag=exog_lag, transform=exog_transform)
        features = features.join(joined.add_prefix(exog_prefix))
    return features


def publication_lag(lag: str | pd.DateOffset) -> pd.DateOffset:
    """A publication lag as a pandas offset ("0D", "45D", "1B"); bar counts are refused."""
    if isinstance(lag, pd.DateOffset):
        return lag
    if not isinstance(lag, str):
        raise DataError(f"publication lag {lag!r}: give a calendar offset such as '0D' or "
                        f"'45D', not a number of bars. Availability is a time: a value dated "
                        f"D is used from the first bar after D ends, plus this lag.")
    try:
        return pd.tseries.frequencies.to_offset(lag)
    except ValueError as exc:
        raise DataError(f"publication lag {lag!r} is not a pandas offset such as '0D', "
                        f"'45D' or '1B'.") from exc


def exog_available_at(dates: pd.DatetimeIndex, lag: str | pd.DateOffset = "0D"
                      ) -> pd.DatetimeIndex:
    """When each exogenous value becomes usable: the end of its date, plus the lag.

    Values stamped at midnight are dated days (a close-of-day figure dated D is known
    when D ends, at D + 1 day); values stamped with a time of day are taken as
    published at that instant.
    """
    offset = publication_lag(lag)
    dated_days = bool((dates == dates.normalize()).all())
    ends = dates + pd.Timedelta(days=1) if dated_days else dates
    return ends + offset


def join_exogenous(
    index: pd.DatetimeIndex,
    exogenous: pd.DataFrame,
    *,
    lag: str | pd.DateOffset = "0D",
    transform: str = "level",
) -> pd.DataFrame:
    """Exogenous values as known at each bar: as-of join by availability time, forward-filled.

    A bar stamped t sees the latest value whose availability time (`exog_available_at`)
    is <= t: for daily bars the previous day's figure, for hourly bars the figure of the
    day before from the first bar of the next day on, whatever the bar spacing. `lag` is
    a publication delay after that ("45D" for quarterly figures published about six
    weeks after the quarter ends).
    """
    if transform not in ("level", "diff"):
        raise DataError(f"exog_transform={transform!r}; use 'level' or 'diff'.")
    exog = exogenous.sort_index().ffill()
    available = exog_available_at(exog.index, lag)
    positions = available.searchsorted(index, side="right") - 1
    values = exog.to_numpy(dtype="float64")
    out = np.full((len(index), values.shape[1]), np.nan)
    known = positions >= 0
    out[known] = values[positions[known]]
    joined = pd.DataFrame(out, index=index, columns=exog.columns)
    if transform == "diff":
        joined = joined.diff()
    return joined


def warmup_bars(features: pd.DataFrame) -> int:
    """Leading rows with at least one NaN feature: the warm-up a model must skip."""
    complete = features.notna().all(axis=1).to_numpy()
    if not complete.any():
        return len(features)
    return int(np.argmax(complete))


def make_target(close: pd.Series, horizon: int = 1, *, skip_gaps: bool = True) -> pd.Series:
    """Forward log return over `horizon` bars: log(close[t+h] / close[t]); NaN for the last h bars.

    Known only at the close of bar t+h, so it is a label, never a feature. A label that
    spans a hole in the data (`data.gap_after`) is NaN with `skip_gaps`: a return over six
    missing months is not a one-bar return, and must not train or score a model.
    """
    if horizon < 1:
        raise DataError(f"horizon must be >= 1 bar, got {horizon}.")
    target = np.log(close.shift(-horizon) / close).rename(f"fwd_log_ret_{horizon}")
    if skip_gaps:
        gaps = pd.Series(gap_after(pd.DatetimeIndex(close.index)), index=close.index)
        spans_gap = gaps.astype(float).rolling(horizon).sum().shift(-horizon) > 0
        target = target.mask(spans_gap)
    return target


def exog_coverage_problem(index: pd.DatetimeIndex, exogenous: pd.DataFrame,
                          max_gap_days: int = 120) -> str | None:
    """What is wrong when exogenous series do not cover the bars, or None when they do.

    Measured per column, from each column's first and last value (not the file's rows):
    a series that starts more than `max_gap_days` after the first bar leaves the early
    bars without it; one that stops that long before the last bar is carried forward,
    stale, to the end.
    """
    problems = []
    for name, column in exogenous.items():
        first, last = column.first_valid_index(), column.last_valid_index()
        if first is None:
            problems.append(f"{name} has no value")
        elif (first - index[0]).days > max_gap_days:
            problems.append(f"{name} starts {first.date()}, {(first - index[0]).days} days "
                            f"after the first bar ({index[0].date()})")
        elif (index[-1] - last).days > max_gap_days:
            problems.append(f"{name} stops {last.date()}, {(index[-1] - last).days} days "
                            f"before the last bar ({index[-1].date()})")
    return "; ".join(problems) or None
