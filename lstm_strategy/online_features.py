"""Features one bar at a time: the row `build_features` gives for a bar, from the bars so far.

A live feed has no next bar, so the whole-file feature frame cannot be built. Here every
default feature is a small recursion or a window over the last bars, written after `ta`'s
own formulas (start values, warm-up lengths, divisions by zero as NaN), so a row equals
`build_features`' row for that bar to ~1e-12 (tests/test_online_features.py, per feature).
Hand-written, measured against talipp 2.7 (`bench/bench_live.py`, AAPL): its SMA and
Bollinger values equal `ta`'s (within 3e-12), its ATR and ADX too but each warms up one
bar apart from `ta` (another NaN pattern), and its EMA (seeded with an SMA) and RSI
differ from `ta`'s by more than 1e-9 for the first 185 and 261 bars, which moves MACD,
ema_dist and rsi as well; it also keeps every past value unless purged. Taking it for
the four that match would add a dependency and still leave the rest to write here.
Features without an online form here (Alpha158, your `features.extra` functions) are
recomputed over a trailing window of bars whose length `prove_window` checks against the
whole-history frame, and say so.

Exogenous series join as-of by availability time, and headlines decay into the sentiment
feature, from tables that may grow while running (`extend_exogenous`, `extend_news`).
"""

from __future__ import annotations

import math
import warnings
from collections import deque

import numpy as np
import pandas as pd

from .errors import DataError
from .features import FeatureConfig, build_features, exog_available_at

NAN = math.nan


def _log(x: float) -> float:
    return float(np.log(x))


class _Ewm:
    """pandas' `ewm(alpha, adjust=False, min_periods)` fed one value at a time."""

    __slots__ = ("alpha", "count", "min_periods", "old", "value", "weight")

    def __init__(self, alpha: float, min_periods: int) -> None:
        self.alpha, self.old, self.min_periods = alpha, 1.0 - alpha, min_periods
        self.value, self.count, self.weight = NAN, 0, 1.0

    def update(self, x: float) -> float:
        observed = x == x
        if self.value == self.value:
            self.weight *= self.old  # pandas keeps the weight of the old value apart
            if observed:
                if self.value != x:
                    self.value = ((self.weight * self.value + self.alpha * x)
                                  / (self.weight + self.alpha))
                self.weight = 1.0
        elif observed:
            self.value = x
        self.count += observed
        return self.value if self.count >= self.min_periods else NAN


INV_COND_TOL = np.finfo(float).eps * 1e3


class _Rolling:
    """pandas' fixed-window rolling mean / sum / var fed one value at a time.

    The same compensated (Kahan) sums and Welford updates, in the same order, as
    pandas' window kernels (pandas/core/_numba/kernels/mean_.py and var_.py mirror the
    Cython ones), so the values equal the batch frame's to the last bit or so; a fresh
    two-pass sum over the window would be more exact, and differ from the frame by the
    drift of pandas' running sums (1e-8 relative, found on 8,000 AAPL bars).
    """

    def __init__(self, window: int, var: bool = False) -> None:
        self.window, self.var = window, var
        self.values: deque = deque(maxlen=window)
        self.nobs = self.neg = self.same = 0
        self.prev = NAN
        self.sum = self.sum_add = self.sum_remove = 0.0
        self.mean = self.ssq = self.var_add = self.var_remove = 0.0

    def push(self, x: float) -> None:
        if len(self.values) == self.window:
            before = self.ssq
            self._remove(self.values.popleft())
            if self.var and self.nobs and self.ssq < INV_COND_TOL * before:
                self._recompute()
        self.values.append(x)
        self._add(x)

    def _recompute(self) -> None:
        """Restart the variance from the window's values: the removal left too few digits
        (pandas 3.1 does the same on the same test, InvCondTol = eps * 1e3)."""
        self.mean = self.ssq = self.var_add = self.var_remove = 0.0
        nobs, self.nobs = self.nobs, 0
        sums = self.sum, self.sum_add, self.neg, self.same, self.prev
        for value in self.values:
            self._add(value)
        self.sum, self.sum_add, self.neg, self.same, self.prev = sums
        assert self.nobs == nobs

    def _add(self, x: float) -> None:
        if x != x:
            return
        self.nobs += 1
        y = x - self.sum_add
        t = self.sum + y
        self.sum_add = t - self.sum - y
        self.sum = t
        self.neg += x < 0
        if x == self.prev:
            self.same += 1
        else:
            self.same = 1
        self.prev = x
        if not self.var:
            return
        prev_mean = self.mean - self.var_add
        y = x - self.var_add
        t = y - self.mean
        self.var_add = t + self.mean - y
        self.mean += t / self.nobs
        self.ssq += (x - prev_mean) * (x - self.mean)

    def _remove(self, x: float) -> None:
        if x != x:
            return
        self.nobs -= 1
        y = -x - self.sum_remove
        t = self.sum + y
        self.sum_remove = t - self.sum - y
        self.sum = t
        self.neg -= x < 0
        if not self.var:
            return
        if self.nobs:
            prev_mean = self.mean - self.var_remove
            y = x - self.var_remove
            t = y - self.mean
            self.var_remove = t + self.mean - y
            self.mean -= t / self.nobs
            self.ssq -= (x - prev_mean) * (x - self.mean)
        else:
            self.mean = self.ssq = 0.0

    def full(self) -> bool:
        return self.nobs >= self.window

    def average(self) -> float:
        if not self.full():
            return NAN
        result = self.sum / self.nobs
        if self.same >= self.nobs:
            return self.prev
        if (self.neg == 0 and result < 0) or (self.neg == self.nobs and result > 0):
            return 0.0
        return result

    def total(self) -> float:
        if not self.full():
            return NAN
        return self.prev * self.nobs if self.same >= self.nobs else self.sum

    def std(self, ddof: int) -> float:
        if not self.full() or self.nobs <= ddof:
            return NAN
        if self.nobs == 1 or self.same >= self.nobs:
            return 0.0
        var = self.ssq / (self.nobs - ddof)
        return math.sqrt(var) if var >= 0 else 0.0


def _div(num: float, den: float) -> float:
    """num / den as the batch frame has it once inf is replaced: NaN for a zero denominator."""
    return num / den if den != 0 else NAN


class _DefaultSet:
    """The default `ta` features (`FEATURES` in features.py), one bar at a time."""

    def __init__(self, config: FeatureConfig) -> None:
        c = self.c = config
        self.names = config.names
        longest = max(21, c.roc_window + 1, c.sma_window, c.obv_window + 1) + 1
        self.closes: deque = deque(maxlen=longest)
        self.rets = _Rolling(c.vol_window, var=True)
        self.rsi_up, self.rsi_down = _Ewm(1 / c.rsi_window, c.rsi_window), _Ewm(
            1 / c.rsi_window, c.rsi_window)
        self.ema_fast = _Ewm(2 / (c.macd_fast + 1), c.macd_fast)
        self.ema_slow = _Ewm(2 / (c.macd_slow + 1), c.macd_slow)
        self.macd_signal = _Ewm(2 / (c.macd_signal + 1), c.macd_signal)
        self.ema = _Ewm(2 / (c.ema_window + 1), c.ema_window)
        self.bb = _Rolling(c.bb_window, var=True)
        self.tr: list[float] = []
        self.atr, self.atr_bars = NAN, 0
        self.obv = NAN
        self.obvs: deque = deque(maxlen=c.obv_window + 1)
        self.vols = _Rolling(c.obv_window)
        self.lows: deque = deque(maxlen=c.stoch_window)
        self.highs: deque = deque(maxlen=c.stoch_window)
        self.stoch = _Rolling(c.stoch_smooth)
        self.tps = _Rolling(c.cci_window)
        self.logv = _Rolling(c.vol_window, var=True)
        self.sma = _Rolling(c.sma_window)
        self.bars = 0
        self.prev: tuple | None = None  # previous bar's high, low, close
        n = c.adx_window
        self.adx_sums = [0.0, 0.0, 0.0]  # ddm, +dm, -dm summed over bars 1..n
        self.trs = self.dip = self.din = NAN
        self.dx: list[float] = []
        self.adx = NAN
        self._n = n

    def _adx(self, high: float, low: float, close: float) -> float:
        n, t = self._n, self.bars
        if self.prev is None:
            return NAN
        ph, pl, pc = self.prev
        ddm = max(high, pc) - min(low, pc)
        up, down = high - ph, pl - low
        pos = up if (up > down and up > 0) else 0.0
        neg = down if (down > up and down > 0) else 0.0
        if t <= n:  # ta sums the first n values, then smooths (Wilder)
            sums = self.adx_sums
            sums[0] += ddm
            sums[1] += pos
            sums[2] += neg
            if t < n:
                return NAN
            self.trs, self.dip, self.din = sums
        else:
            self.trs = self.trs - self.trs / float(n) + ddm
            self.dip = self.dip - self.dip / float(n) + pos
            self.din = self.din - self.din / float(n) + neg
        dip = 100 * (self.dip / self.trs) if self.trs != 0 else 0
        din = 100 * (self.din / self.trs) if self.trs != 0 else 0
        dx = 100 * abs((dip - din) / (dip + din)) if dip + din != 0 else 0
        if t < 2 * n:
            self.dx.append(dx)
            if t == 2 * n - 1:
                self.adx = float(np.mean(self.dx))
            return NAN
        self.adx = ((self.adx * (n - 1)) + dx) / float(n)
        return self.adx / 100

    def update(self, open_: float, high: float, low: float, close: float,
               volume: float) -> dict[str, float]:
        c, closes = self.c, self.closes
        closes.append(close)
        t = self.bars
        out: dict[str, float] = {}

        seen = len(closes)
        prev_close = closes[-2] if seen > 1 else NAN
        log = _log  # NumPy's log: math.log rounds 1 value in 30 differently
        out["log_ret_1"] = r1 = log(close / prev_close) if seen > 1 else NAN
        out["log_ret_5"] = log(close / closes[-6]) if seen > 5 else NAN
        out["log_ret_20"] = log(close / closes[-21]) if seen > 20 else NAN
        self.rets.push(r1)
        out["realized_vol"] = self.rets.std(1) * math.sqrt(252)
        diff = close - prev_close
        up = diff if diff > 0 else 0.0
        down = -(diff if diff < 0 else 0.0)
        emaup, emadn = self.rsi_up.update(up), self.rsi_down.update(down)
        out["rsi"] = (1.0 if emadn == 0 else (100 - 100 / (1 + emaup / emadn)) / 100
                      if emadn == emadn else NAN)
        fast, slow = self.ema_fast.update(close), self.ema_slow.update(close)
        macd = fast - slow
        signal = self.macd_signal.update(macd)
        out["macd"] = macd / close
        out["macd_hist"] = (macd - signal) / close
        self.bb.push(close)
        if self.bb.full():
            mean, std = self.bb.average(), self.bb.std(0)
            hband, lband = mean + c.bb_dev * std, mean - c.bb_dev * std
            out["bb_pband"] = _div(close - lband, hband - lband) if hband != lband else NAN
            out["bb_width"] = _div((hband - lband), mean) * 100 / 100
        else:
            out["bb_pband"] = out["bb_width"] = NAN
        tr = high - low if prev_close != prev_close else max(
            high - low, abs(high - prev_close), abs(low - prev_close))
        n_atr = c.atr_window
        if t < n_atr:
            self.tr.append(tr)
            if t == n_atr - 1:
                self.atr = float(pd.Series(self.tr).mean())
            out["atr"] = NAN
        else:
            self.atr = (self.atr * (n_atr - 1) + tr) / float(n_atr)
            out["atr"] = self.atr / close
        self.obv = volume if t == 0 else self.obv + (-volume if close < prev_close else volume)
        self.obvs.append(self.obv)
        self.vols.push(volume)
        out["obv_slope"] = (_div(self.obv - self.obvs[0], self.vols.total())
                            if len(self.obvs) == self.obvs.maxlen else NAN)
        ema = self.ema.update(close)
        out["ema_dist"] = close / ema - 1
        self.sma.push(close)
        out["sma_dist"] = close / self.sma.average() - 1
        self.lows.append(low)
        self.highs.append(high)
        if len(self.lows) == self.lows.maxlen:
            smin, smax = min(self.lows), max(self.highs)
            k = _div(100 * (close - smin), smax - smin)
        else:
            k = NAN
        self.stoch.push(k)
        out["stoch_k"] = k / 100
        out["stoch_d"] = self.stoch.average() / 100
        out["adx"] = self._adx(high, low, close)
        tp = (high + low + close) / 3.0
        self.tps.push(tp)
        if self.tps.full():
            n = self.tps.window
            window = np.fromiter(self.tps.values, float, n)
            mad = np.abs(window - window.sum() / n).sum() / n  # np.mean's arithmetic
            out["cci"] = _div(tp - self.tps.average(), 0.015 * mad) / 100
        else:
            out["cci"] = NAN
        before = closes[-1 - c.roc_window] if seen > c.roc_window else NAN
        out["roc"] = _div(close - before, before) * 100 / 100 if before == before else NAN
        self.logv.push(float(np.log1p(volume)))
        out["volume_z"] = _div(self.logv.values[-1] - self.logv.average(), self.logv.std(1))
        self.prev = (high, low, close)
        self.bars += 1
        return out


class _TrailingWindow:
    """Features without an online form: `build_features` over the last `window` bars."""

    def __init__(self, config: FeatureConfig, window: int, exogenous: pd.DataFrame | None,
                 news: pd.DataFrame | None) -> None:
        self.config, self.window = config, window
        self.exogenous, self.news = exogenous, news
        self.bars: deque = deque(maxlen=window)
        self.volume = True

    def update(self, when: pd.Timestamp, bar: tuple) -> pd.Series:
        self.bars.append((when, *bar))
        frame = pd.DataFrame(list(self.bars), columns=["date", "Open", "High", "Low", "Close",
                                                       "Volume"]).set_index("date")
        frame.attrs["volume"] = self.volume
        return build_features(frame, self.config, exogenous=self.exogenous,
                              news=self.news).iloc[-1]


def prove_window(bars: pd.DataFrame, config: FeatureConfig, *, check_rows: int = 20,
                 start: int = 64, tolerance: float = 1e-9,
                 exogenous: pd.DataFrame | None = None,
                 news: pd.DataFrame | None = None) -> int:
    """The shortest trailing window (doubling from `start` bars) whose recomputed last rows
    equal the whole-history frame's on the last `check_rows` bars of `bars`.

    Raises DataError when even the whole history is not long enough to tell.
    """
    full = build_features(bars, config, exogenous=exogenous, news=news)
    rows = range(max(0, len(bars) - check_rows), len(bars))
    window = start
    while window < len(bars):
        worst = 0.0
        for row in rows:
            lo = max(0, row + 1 - window)
            part = build_features(bars.iloc[lo:row + 1], config, exogenous=exogenous,
                                  news=news).iloc[-1].to_numpy(float)
            want = full.iloc[row].to_numpy(float)
            if not np.array_equal(np.isnan(part), np.isnan(want)):
                worst = math.inf
                break
            scale = np.maximum(np.abs(want), 1.0)
            diff = np.abs(np.nan_to_num(part) - np.nan_to_num(want)) / scale
            worst = max(worst, float(diff.max(initial=0.0)))
        if worst <= tolerance:
            return window
        window *= 2
    raise DataError(f"online features: {len(bars)} bars of history are too few to prove how "
                    f"many trailing bars the features {config.set!r}+{list(config.extra)} "
                    f"need; give a longer backfill history.")


class OnlineFeatures:
    """The feature row of each new bar, equal to `build_features`' row for that bar.

    `update(when, open, high, low, close, volume)` once per bar in time order returns
    the row as an array in `columns` order (NaN while warming up). The same keyword
    arguments as `build_features` (exogenous, lag, prefix, transform, news) plus the
    sentiment feature's settings (`sentiment_ticker` names the ticker whose headlines
    count; None leaves the feature out). Features with no online form need `window`:
    a trailing bar count (see `prove_window`), said in a warning.
    """

    def __init__(self, config: FeatureConfig | None = None, *,
                 exogenous: pd.DataFrame | None = None, exog_lag: str = "0D",
                 exog_prefix: str = "", exog_transform: str = "level",
                 news: pd.DataFrame | None = None, sentiment_ticker: str | None = None,
                 half_life: str = "3D", close_time: str = "16:00",
                 window: int | None = None, volume: bool = True) -> None:
        self.config = config = config or FeatureConfig()
        self._default = None if (config.set != "default" or config.extra) else _DefaultSet(
            config)
        self._trailing = None
        if self._default is None:
            if window is None:
                raise DataError(f"online features: features.set={config.set!r} with extra "
                                f"{list(config.extra)} has no online form here; give "
                                f"window= trailing bars (prove_window measures it on your "
                                f"history).")
            self._trailing = _TrailingWindow(config, window, exogenous, news)
            self._trailing.volume = volume
            warnings.warn(f"online features: {config.set} and {list(config.extra)} are "
                          f"recomputed each bar over the last {window} bars (no online "
                          f"form; the window was proven on the history).", stacklevel=2)
        self._exog_lag, self._prefix, self._transform = exog_lag, exog_prefix, exog_transform
        self._exog_names: list[str] = []
        self._exog_times = np.empty(0, "datetime64[ns]")
        self._exog_values = np.empty((0, 0))
        self._exog_last: np.ndarray | None = None
        if exogenous is not None:
            self.extend_exogenous(exogenous)
        self._ticker = sentiment_ticker.upper() if sentiment_ticker else None
        self._scale = float(pd.Timedelta(half_life).value)
        self._close_time = pd.Timedelta(close_time + ":00" if close_time.count(":") == 1
                                        else close_time)
        self._news = pd.DataFrame(columns=["timestamp", "ticker", "score"])
        self._stamps = np.empty(0, "int64")
        self._scores = np.empty(0)
        self._taken = 0
        self._weighted = self._weight = 0.0
        self._previous_close: int | None = None
        self._seen: deque[pd.Timestamp] = deque(maxlen=51)
        self._daily = True  # every bar so far stamped at midnight (daily bars)
        if news is not None and self._ticker:
            self.extend_news(news)
        self.columns = self._columns(volume)

    def _columns(self, volume: bool) -> tuple[str, ...]:
        if self._default is not None:
            names = list(self.config.names)
        else:
            empty = pd.DataFrame({"Open": [1.0], "High": [1.0], "Low": [1.0], "Close": [1.0],
                                  "Volume": [1.0]}, index=pd.DatetimeIndex(["2000-01-03"]))
            empty.attrs["volume"] = volume
            names = list(build_features(empty, self.config, exogenous=None,
                                        news=self._trailing.news).columns)
        names += [self._prefix + n for n in self._exog_names]
        return tuple(names + (["sentiment"] if self._ticker else []))

    def extend_exogenous(self, table: pd.DataFrame) -> None:
        """Take an exogenous table that grew (rows only added after the last one)."""
        if self._exog_names and list(table.columns) != self._exog_names:
            raise DataError(f"exogenous series changed columns while running: "
                            f"{self._exog_names} -> {list(table.columns)}; restart the run.")
        self._exog_names = [str(c) for c in table.columns]
        exog = table.sort_index().ffill()
        self._exog_times = exog_available_at(exog.index, self._exog_lag).as_unit(
            "ns").to_numpy()
        self._exog_values = exog.to_numpy(dtype="float64")

    def extend_news(self, news: pd.DataFrame) -> None:
        """Take headlines that arrived (timestamp, ticker, score); later ones only add."""
        if not self._ticker:
            return
        mine = news[news["ticker"].isin([self._ticker, "*"])]
        stamps = mine["timestamp"].to_numpy("datetime64[ns]").astype("int64")
        keep = stamps > (self._stamps[self._taken - 1] if self._taken else np.iinfo("int64").min)
        order = np.argsort(stamps[keep], kind="stable")  # one order for stamps and scores
        self._stamps = np.concatenate([self._stamps[:self._taken], stamps[keep][order]])
        self._scores = np.concatenate([self._scores[:self._taken],
                                       mine["score"].to_numpy(float)[keep][order]])

    def _bar_close(self, when: pd.Timestamp) -> int:
        """When this bar closes, as `sentiment.bar_closes` has it (intraday: the median
        spacing of the last 50 bars, where the batch takes the whole file's)."""
        seen = self._seen
        if self._daily:
            return (when + self._close_time).value
        step = pd.Series(list(seen)).diff().median() if len(seen) > 1 else pd.Timedelta(hours=1)
        return (when + step).value

    def _sentiment(self, when: pd.Timestamp) -> float:
        close = self._bar_close(when)
        if self._previous_close is not None:
            fade = 0.5 ** ((close - self._previous_close) / self._scale)
            self._weighted, self._weight = self._weighted * fade, self._weight * fade
        arrived = int(np.searchsorted(self._stamps, close, side="right"))
        if arrived > self._taken:
            fresh = 0.5 ** ((close - self._stamps[self._taken:arrived]) / self._scale)
            self._weighted += float(fresh @ self._scores[self._taken:arrived])
            self._weight += float(fresh.sum())
            self._taken = arrived
        self._previous_close = close
        return self._weighted / max(1.0, self._weight)

    def _exogenous(self, when: pd.Timestamp) -> np.ndarray:
        at = int(np.searchsorted(self._exog_times, when.as_unit("ns").to_datetime64(),
                                 side="right")) - 1
        level = (self._exog_values[at] if at >= 0
                 else np.full(len(self._exog_names), np.nan))
        if self._transform == "level":
            return level
        last, self._exog_last = self._exog_last, level
        return level - last if last is not None else np.full(len(level), np.nan)

    def update(self, when: pd.Timestamp, open_: float, high: float, low: float,
               close: float, volume: float) -> np.ndarray:
        """The feature row of the bar stamped `when` (bars in time order, each once)."""
        if not isinstance(when, pd.Timestamp):
            when = pd.Timestamp(when)
        seen = self._seen
        if seen and when <= seen[-1]:
            raise DataError(f"online features: bar {when} does not follow {seen[-1]}; "
                            f"bars must arrive in time order, each once.")
        if self._daily:
            self._daily = not (when.hour or when.minute or when.second or when.microsecond
                               or when.nanosecond)
        seen.append(when)
        if self._default is not None:
            values = self._default.update(open_, high, low, close, volume)
            row = [values[n] for n in self.config.names]
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                row = list(self._trailing.update(when, (open_, high, low, close, volume)))
        if self._exog_names:
            row += list(self._exogenous(when))
        if self._ticker:
            row.append(self._sentiment(when))
        out = np.array(row, dtype=np.float64)
        if self._trailing is not None or self._exog_names:  # the default set emits no inf
            out[~np.isfinite(out)] = np.nan
        return out

    def frame(self, bars: pd.DataFrame) -> pd.DataFrame:
        """Feed every bar of `bars` (warm-up from history); the rows as a frame."""
        rows = [self.update(t, *values) for t, values in zip(
            bars.index, bars[["Open", "High", "Low", "Close", "Volume"]].to_numpy(float),
            strict=True)]
        return pd.DataFrame(rows, index=bars.index, columns=list(self.columns))
