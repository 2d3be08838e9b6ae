"""The trading rules, once: forecast signal in, direction and target fraction of equity out.

`RULE_PARAMS` declares every trading knob once (name, default, type, meaning). From it
come `LSTMStrategy.params` and its docstring's Params block, and the `strategy` section
of a config file; `check_rules` is the one set of checks both use. `decide` is a pure
function of the decision state and what is known at a bar's close; `LSTMStrategy.next`
calls it, and any other engine (a compiled one for sweeps) must agree with it.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Mapping
from functools import reduce
from typing import NamedTuple

import numpy as np

from ..errors import ConfigError

SIZINGS = ("fixed", "vol_target", "confidence", "sizer")


class Param(NamedTuple):
    """One strategy knob: its name, default, type and what it does."""

    name: str
    default: object
    type: type
    doc: str


RULE_PARAMS: tuple[Param, ...] = (
    Param("entry_threshold", 0.0, float,
          "enter long when signal > this, short when signal < -this"),
    Param("exit_threshold", 0.0, float,
          "leave a long when signal <= this, a short when signal >= -this (<= entry)"),
    Param("zscore_window", 0, int,
          "> 0: the signal is the forecast's z-score over this many bars; 0: the forecast"),
    Param("allow_short", False, bool, "take short positions on negative signals"),
    Param("sizing", "fixed", str,
          "fixed | vol_target | confidence | sizer (leave sizes to the cerebro's sizer)"),
    Param("fraction", 0.95, float, "fraction of equity per position, split across datas"),
    Param("target_vol", 0.15, float, "annualised volatility target (vol_target sizing)"),
    Param("vol_window", 20, int, "bars of returns for the volatility estimate"),
    Param("confidence_scale", 0.0, float,
          "|signal| at which confidence sizing reaches the full fraction"),
    Param("max_position", 1.0, float, "cap on |target| as a fraction of equity"),
    Param("stop_loss", 0.0, float,
          "exit when the close moves this fraction against the entry fill (0: off)"),
    Param("take_profit", 0.0, float,
          "exit when the close moves this fraction in favour of the entry fill (0: off)"),
    Param("min_hold_bars", 0, int, "bars a position is held before a signal may close it"),
    Param("rebalance_band", 0.05, float,
          "re-size only when the target moves by more than this share of the position"),
)


def left_sum(values: Iterable[float]) -> float:
    """Floats added left to right, as the compiled loop adds them.

    Python 3.12's `sum()` compensates rounding and Numba's loop does not, so the backtrader
    strategy, the reference loop and the compiled loop all add this way to stay bit-equal.
    """
    return reduce(operator.add, values, 0.0)


def check_rules(values: Mapping[str, object], prefix: str = "") -> None:
    """Raise ConfigError naming the first knob that breaks its rule (`prefix` + its name)."""
    def fail(key: str, rule: str) -> None:
        raise ConfigError(f"{prefix}{key}={values[key]!r} {rule}.")

    if values["sizing"] not in SIZINGS:
        fail("sizing", f"is not allowed; use one of {list(SIZINGS)}")
    if not 0 < values["fraction"] <= values["max_position"]:
        fail("fraction", f"must be in (0, {prefix}max_position={values['max_position']}]")
    if values["exit_threshold"] > values["entry_threshold"]:
        fail("exit_threshold", f"must be <= {prefix}entry_threshold="
                               f"{values['entry_threshold']!r}")
    if values["sizing"] == "confidence" and values["confidence_scale"] <= 0:
        fail("confidence_scale", "must be > 0 with sizing=confidence (the |signal| that "
                                 "earns a full position)")
    for key in ("stop_loss", "take_profit", "min_hold_bars", "zscore_window", "target_vol",
                "rebalance_band"):
        if values[key] < 0:
            fail(key, "must be >= 0")
    if values["vol_window"] < 2:
        fail("vol_window", "must be >= 2 bars")


def params_doc(params: tuple[Param, ...]) -> str:
    """A backtrader-style `Params:` block for a class docstring (what help() shows)."""
    lines = ["Params:"]
    for p in params:
        lines.append(f"  - ``{p.name}`` (default: {p.default!r}): {p.doc}")
    return "\n".join(lines)


class Rules(NamedTuple):
    """The trading knobs as one decision needs them (per data, already split)."""

    entry: float
    exit: float
    allow_short: bool
    min_hold: int
    stop_loss: float
    take_profit: float
    sizing: str
    fraction: float  # per data
    target_vol: float
    confidence_scale: float
    max_position: float  # per data
    band: float  # per data, as a fraction of equity

    @classmethod
    def from_params(cls, p: object, n_datas: int) -> Rules:
        """From a params object (LSTMStrategy's `self.p`) for `n_datas` data feeds."""
        fraction = p.fraction / n_datas
        return cls(p.entry_threshold, p.exit_threshold, bool(p.allow_short), p.min_hold_bars,
                   p.stop_loss, p.take_profit, p.sizing, fraction, p.target_vol,
                   p.confidence_scale, p.max_position / n_datas, p.rebalance_band * fraction)


class Position(NamedTuple):
    """What the rules remember about one data between bars."""

    direction: int = 0  # -1 short, 0 flat, +1 long (as decided; fills follow)
    target: float = 0.0  # target fraction of equity
    entry_bar: int = -1  # bar at which the current direction was decided
    entry_price: float = math.nan  # the entry's fill price (set by the broker's fill)
    blocked: int = 0  # direction stopped out; re-entry waits for the signal to reset


def _direction(state: Position, signal: float, held_bars: int, rules: Rules
               ) -> tuple[int, int]:
    """The wanted direction and the (possibly reset) stop-out block."""
    current, blocked = state.direction, state.blocked
    if current != 0 and held_bars < rules.min_hold:
        return current, blocked
    entry, exit_ = rules.entry, rules.exit
    wants = 1 if signal > entry else (-1 if (rules.allow_short and signal < -entry) else 0)
    if blocked == 1 and signal <= exit_:
        blocked = 0
    if blocked == -1 and signal >= -exit_:
        blocked = 0
    if wants == blocked:
        wants = 0
    if current == 1 and wants == 0 and signal > exit_:
        return 1, blocked
    if current == -1 and wants == 0 and signal < -exit_:
        return -1, blocked
    return wants, blocked


def _stopped(state: Position, close: float, rules: Rules) -> bool:
    if state.direction == 0 or math.isnan(state.entry_price):
        return False
    move = state.direction * (close / state.entry_price - 1.0)
    return bool((rules.stop_loss and move <= -rules.stop_loss) or
                (rules.take_profit and move >= rules.take_profit))


def position_size(signal: float, vol: float, rules: Rules) -> float:
    """|target| for a new or held position: the fraction, scaled by the sizing rule, capped.

    `vol` is the annualised volatility estimate (NaN while it is warming up: size 0).
    """
    base = rules.fraction
    if rules.sizing == "vol_target":
        if math.isnan(vol):
            return 0.0
        base = base * (rules.target_vol / vol if vol > 0 else 1.0)
    elif rules.sizing == "confidence":
        base = base * min(1.0, abs(signal) / rules.confidence_scale)
    return min(base, rules.max_position)


def decide(state: Position, bar: int, signal: float, close: float, vol: float, rules: Rules
           ) -> tuple[Position, float | None]:
    """One bar's decision at its close: the new state, and the target to order (None: none).

    `bar` counts bars (backtrader's len(data)), `signal` is the forecast's signal (NaN
    while a z-score warms up: hold), `close` the bar's close (for stops), `vol` the
    annualised volatility estimate (vol_target sizing). With sizing="sizer" the target
    is the direction alone (+-1, 0): the cerebro's sizer decides how much.
    """
    held = bar - state.entry_bar if rules.min_hold and state.entry_bar >= 0 else 0
    blocked = state.blocked
    if (rules.stop_loss or rules.take_profit) and _stopped(state, close, rules):
        blocked, direction = state.direction, 0
    elif signal != signal:  # NaN: the z-score is still warming up
        direction = state.direction
    else:
        direction, blocked = _direction(state, signal, held, rules)
    if direction == 0:
        target = 0.0
    elif direction == state.direction and rules.sizing in ("fixed", "sizer"):
        target = state.target
    elif rules.sizing == "sizer":
        target = float(direction)
    else:
        target = direction * position_size(signal, vol, rules)
    entry_bar, entry_price = state.entry_bar, state.entry_price
    if direction != state.direction:
        entry_bar = bar if direction else -1
        entry_price = math.nan
    if direction != state.direction or abs(target - state.target) > rules.band:
        return Position(direction, target, entry_bar, entry_price, blocked), target
    if blocked == state.blocked:
        return state, None  # nothing moved (the common case: no new object per bar)
    return state._replace(blocked=blocked), None


# -- cross-sectional rules ---------------------------------------------------------------
WEIGHTINGS = ("equal", "forecast")
BOOKS = ("rank", "topk_dropout")


def check_book(*, top_k: int, weighting: str = "equal", gross: float = 1.0,
               max_turnover: float = 0.0, rebalance: int = 1, book: str = "rank",
               n_drop: int = 1) -> None:
    """The one set of checks for a cross-sectional book's settings (ConfigError)."""
    if book not in BOOKS:
        raise ConfigError(f"book={book!r}; choose one of {list(BOOKS)}.")
    if weighting not in WEIGHTINGS:
        raise ConfigError(f"weighting={weighting!r}; choose one of {list(WEIGHTINGS)}.")
    if top_k < 1 or gross < 0 or max_turnover < 0:
        raise ConfigError(f"top_k={top_k} must be >= 1, gross={gross} and "
                          f"max_turnover={max_turnover} >= 0.")
    if rebalance < 1:
        raise ConfigError(f"rebalance={rebalance} must be >= 1 bar.")
    if n_drop < 0:
        raise ConfigError(f"n_drop={n_drop} must be >= 0 (0: never replace a holding).")
    if book == "topk_dropout" and (weighting != "equal" or max_turnover > 0):
        raise ConfigError(f"book=topk_dropout sizes its buys equally and caps turnover by "
                          f"n_drop; weighting={weighting!r} and max_turnover={max_turnover} "
                          f"belong to book=rank: set weighting: equal and max_turnover: 0.")


def rank_targets(forecasts: np.ndarray, held: np.ndarray, *, top_k: int, allow_short: bool,
                 weighting: str = "equal", gross: float = 1.0, max_turnover: float = 0.0
                 ) -> np.ndarray:
    """Target weights (fractions of equity) of a cross-sectional book, one per asset.

    The `top_k` highest forecasts go long, and with `allow_short` the `top_k` lowest go
    short (k shrinks when fewer assets have a finite forecast); everything else is
    closed. Equal weights split `gross` across the legs (half each when shorting); with
    "forecast" a leg's weights follow each forecast's distance from the cross-sectional
    mean. Ties rank by asset order (the earlier asset ranks higher). `max_turnover` > 0
    caps sum |target - held| by moving every weight the same share of the way.
    """
    check_book(top_k=top_k, weighting=weighting, gross=gross, max_turnover=max_turnover)
    target = np.zeros(len(forecasts))
    finite = np.flatnonzero(np.isfinite(forecasts))
    k = min(top_k, len(finite) // 2 if allow_short else len(finite))
    if k > 0:
        ranked = finite[np.argsort(-forecasts[finite], kind="stable")]
        centre = forecasts[finite].mean()
        legs = [(ranked[:k], 1.0)]
        if allow_short:
            legs.append((ranked[::-1][:k], -1.0))
        for members, sign in legs:
            share = gross / len(legs)
            scores = np.maximum(sign * (forecasts[members] - centre), 0.0)
            if weighting == "equal" or not scores.sum() > 0:
                scores = np.ones(len(members))
            target[members] = sign * share * scores / scores.sum()
    change = target - held
    moved = np.abs(change).sum()
    if max_turnover > 0 and moved > max_turnover:
        target = held + change * (max_turnover / moved)
    return target


def _by_score(members: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """`members` best score first; NaN scores last; ties by asset order."""
    keys = np.where(np.isfinite(scores[members]), -scores[members], np.inf)
    return members[np.lexsort((members, keys))]


def _dropout_leg(scores: np.ndarray, held: np.ndarray, free: np.ndarray, top_k: int,
                 n_drop: int) -> tuple[np.ndarray, np.ndarray]:
    """(sold, bought) of one leg by Qlib's TopkDropout rule, on scores where higher is better.

    `held` are the leg's holdings, `free` the assets it may buy. The buy list is the best
    `n_drop + top_k - len(held)` not held; of the holdings, those among the `n_drop` worst
    of holdings and buy list together are sold (so a holding is never dropped for a
    worse asset), and as many of the buy list bought as keep the leg at `top_k`.
    """
    last = _by_score(held, scores)
    candidates = _by_score(free[np.isfinite(scores[free])], scores)
    today = candidates[:max(n_drop + top_k - len(last), 0)]
    combined = _by_score(np.concatenate([last, today]), scores)
    worst = combined[max(len(combined) - n_drop, 0):] if n_drop > 0 else combined[:0]
    sold = last[np.isin(last, worst)]
    return sold, today[:max(len(sold) + top_k - len(last), 0)]


def topk_dropout_targets(forecasts: np.ndarray, held: np.ndarray, *, top_k: int,
                         n_drop: int, allow_short: bool, gross: float = 1.0) -> np.ndarray:
    """Target weights of Qlib's TopkDropout book: few trades a rebalance, by construction.

    Hold the `top_k` best forecasts; at each rebalance sell at most `n_drop` holdings,
    those ranked lowest (a holding without a finite forecast ranks lowest of all), and buy
    as many of the best not held. Holdings kept are not traded: their target is what is
    held. The buys split equally what the leg's budget (`gross`, half each side with
    `allow_short`, whose short leg is the same rule on the lowest forecasts) has left
    after the holdings kept; Qlib splits `risk_degree` x the cash, the same with gross 1.
    """
    check_book(top_k=top_k, gross=gross, book="topk_dropout", n_drop=n_drop)
    target = np.array(held, dtype=float)
    assets = np.arange(len(forecasts))
    legs = [(forecasts, 1.0)] + ([(-np.asarray(forecasts), -1.0)] if allow_short else [])
    for scores, sign in legs:  # the short leg sees the long leg's trades: never both sides
        mine = sign * target > 0
        sold, bought = _dropout_leg(scores, assets[mine], assets[target == 0], top_k, n_drop)
        target[sold] = 0.0
        kept = sign * target[sign * target > 0]
        if len(bought):
            target[bought] = sign * max(gross / len(legs) - kept.sum(), 0.0) / len(bought)
    return target


def book_targets(forecasts: np.ndarray, held: np.ndarray, *, book: str, top_k: int,
                 allow_short: bool, weighting: str = "equal", gross: float = 1.0,
                 max_turnover: float = 0.0, n_drop: int = 1) -> np.ndarray:
    """The target weights of the cross-sectional `book` ("rank" or "topk_dropout")."""
    if book == "topk_dropout":
        return topk_dropout_targets(forecasts, held, top_k=top_k, n_drop=n_drop,
                                    allow_short=allow_short, gross=gross)
    return rank_targets(forecasts, held, top_k=top_k, allow_short=allow_short,
                        weighting=weighting, gross=gross, max_turnover=max_turnover)
