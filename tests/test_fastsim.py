"""The fast evaluator gives backtrader's fills, equity and trades for every point it serves."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from lstm_strategy import LSTMStrategy, backtest, load_many, load_ohlcv
from lstm_strategy.backtest.decision import left_sum
from lstm_strategy.backtest.fastsim import simulate, unsupported
from lstm_strategy.config import BrokerConfig

from .conftest import DATA

FILL_COLUMNS = ["size", "price", "value", "commission"]
TRADE_COLUMNS = ["ticker", "entry_date", "exit_date", "direction", "status"]


@pytest.fixture(scope="module")
def universes() -> dict[str, dict[str, pd.DataFrame]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        three = load_many([DATA / f"{t}.csv" for t in ("AAPL", "MSFT", "IBM")])
    return {"one": {"AAPL": load_ohlcv(DATA / "AAPL.csv").loc["2006":"2008"]},
            "three": {t: f.loc["2006":"2008"] for t, f in three.items()}}


def both(bars: dict, forecasts: dict, broker: BrokerConfig, start: pd.Timestamp,
         **params: object) -> tuple:
    ref = backtest(bars, LSTMStrategy, broker=broker, trade_start=start, forecasts=forecasts,
                   record=False, cross_check=False, **params)
    fast = simulate(bars, forecasts, cash=broker.cash, commission_bps=broker.commission_bps,
                    slippage_bps=broker.slippage_bps, fill=broker.fill,
                    fractional=broker.fractional, trade_start=start, **params)
    return ref, fast


def assert_same(ref: object, fast: object, label: object) -> None:
    assert list(ref.fills["date"]) == list(fast.fills["date"]), label
    assert list(ref.fills["ticker"]) == list(fast.fills["ticker"]), label
    np.testing.assert_allclose(fast.fills[FILL_COLUMNS].to_numpy(float),
                               ref.fills[FILL_COLUMNS].to_numpy(float), rtol=1e-9,
                               err_msg=str(label))
    np.testing.assert_allclose(fast.equity["value"].to_numpy(), ref.equity["value"].to_numpy(),
                               rtol=1e-9, err_msg=str(label))
    assert fast.equity.index.equals(ref.equity.index), label
    pd.testing.assert_frame_equal(fast.trades[TRADE_COLUMNS], ref.trades[TRADE_COLUMNS],
                                  obj=str(label))
    np.testing.assert_allclose(fast.trades[["pnl", "pnl_net", "entry_price"]].to_numpy(float),
                               ref.trades[["pnl", "pnl_net", "entry_price"]].to_numpy(float),
                               rtol=1e-9, atol=1e-9, err_msg=str(label))
    assert fast.rejected_orders == ref.rejected_orders, label


def test_random_points_match_backtrader(universes: dict) -> None:
    """Hundreds of draws: one and three tickers, both sides, each sizing, stops, both fills."""
    rng = np.random.default_rng(2026)
    for draw in range(150):
        bars = universes["one" if draw % 2 == 0 else "three"]
        kind = draw % 3
        forecasts = {}
        for ticker, frame in bars.items():
            if kind == 0:  # noise
                values = rng.normal(0.0005, 0.01, len(frame))
            else:  # the naive forecast: real returns, smoothed
                values = np.log(frame["Close"]).diff().rolling(int(rng.integers(1, 8))).mean()
            forecasts[ticker] = pd.Series(values, index=frame.index)
        entry = float(rng.choice([0.0, 0.0005, 0.002]))
        params = {
            "entry_threshold": entry, "exit_threshold": entry * float(rng.choice([0, 0.5])),
            "allow_short": bool(rng.integers(2)),
            "sizing": str(rng.choice(["fixed", "vol_target", "confidence"])),
            "fraction": float(rng.choice([0.3, 0.95, 1.0])),
            "zscore_window": int(rng.choice([0, 0, 15])),
            "stop_loss": float(rng.choice([0.0, 0.02, 0.05])),
            "take_profit": float(rng.choice([0.0, 0.08])),
            "min_hold_bars": int(rng.choice([0, 4])),
            "rebalance_band": float(rng.choice([0.0, 0.05, 0.2])),
            "confidence_scale": float(rng.choice([0.005, 1.0])),
            "target_vol": float(rng.choice([0.1, 0.4])), "vol_window": int(rng.choice([10, 20])),
        }
        broker = BrokerConfig(commission_bps=float(rng.choice([0, 5, 25])),
                              slippage_bps=float(rng.choice([0, 2, 30])),
                              fill=str(rng.choice(["next_open", "close"])),
                              fractional=bool(rng.integers(2)))
        start = next(iter(bars.values())).index[int(rng.integers(0, 60))]
        ref, fast = both(bars, forecasts, broker, start, **params)
        assert_same(ref, fast, (draw, params, broker))


def test_gross_exposure_is_added_left_to_right_on_every_python() -> None:
    # Python 3.12's sum() compensates (it gives 1.0 here); the compiled loop adds plainly,
    # and a reference loop that used sum() differed from it in the last digit on 3.12
    assert left_sum([1e16, 1.0, -1e16]) == 0.0
    assert left_sum(iter([0.1, 0.2, 0.3])) == (0.1 + 0.2) + 0.3


def test_the_compiled_loop_equals_the_reference_loop(universes: dict) -> None:
    """The Numba loop and the plain-Python reference model give identical results."""
    rng = np.random.default_rng(7)
    bars = universes["three"]
    forecasts = {t: pd.Series(rng.normal(0.0003, 0.01, len(f)), index=f.index)
                 for t, f in bars.items()}
    for sizing in ("fixed", "vol_target", "confidence"):
        for fill in ("next_open", "close"):
            kwargs = {"sizing": sizing, "fill": fill, "allow_short": True, "stop_loss": 0.03,
                      "zscore_window": 10, "confidence_scale": 1.0, "fractional": True,
                      "trade_start": next(iter(bars.values())).index[20]}
            compiled = simulate(bars, forecasts, **kwargs)
            reference = simulate(bars, forecasts, compiled=False, **kwargs)
            pd.testing.assert_frame_equal(compiled.fills, reference.fills, check_exact=True)
            pd.testing.assert_frame_equal(compiled.equity, reference.equity, check_exact=True)
            pd.testing.assert_frame_equal(compiled.trades, reference.trades, check_exact=True)


def test_hand_made_cases_where_the_broker_rules_bite(universes: dict) -> None:
    aapl = load_ohlcv(DATA / "AAPL.csv")
    costs = BrokerConfig(commission_bps=5.0, slippage_bps=2.0)
    # a gap through a stop: AAPL opened 52% lower on 2000-09-29
    window = aapl.loc["2000-08-01":"2000-11-30"]
    ref, fast = both({"AAPL": window}, {"AAPL": pd.Series(0.01, index=window.index)}, costs,
                     window.index[0], stop_loss=0.05)
    assert_same(ref, fast, "gap through a stop")
    assert (ref.fills["date"] == pd.Timestamp("2000-10-02")).any()  # out at the next open
    # all in before a 4% gap up: sized at the open it fills at, nothing is refused
    window = aapl.loc["2001-03-01":"2001-05-31"]
    for broker in (BrokerConfig(commission_bps=0.0, slippage_bps=0.0), costs):
        ref, fast = both({"AAPL": window}, {"AAPL": pd.Series(0.01, index=window.index)},
                         broker, pd.Timestamp("2001-04-18"), fraction=1.0)
        assert ref.rejected_orders == 0 and ref.fills["date"].iloc[0] == pd.Timestamp(
            "2001-04-19")
        assert_same(ref, fast, "all in before a gap up")
    # close fills size at the signal close they fill at: the same without cheat-on-open
    close = BrokerConfig(commission_bps=5.0, slippage_bps=2.0, fill="close")
    ref, fast = both({"AAPL": window}, {"AAPL": pd.Series(0.01, index=window.index)},
                     close, pd.Timestamp("2001-04-18"), fraction=1.0)
    assert ref.rejected_orders == 0
    assert_same(ref, fast, "all in, close fills")
    # a flip from long to short in one order, and re-sizing inside and outside the band
    bars = universes["one"]
    flips = pd.Series(np.where(np.arange(len(bars["AAPL"])) % 10 < 5, 0.01, -0.01),
                      index=bars["AAPL"].index)
    ref, fast = both(bars, {"AAPL": flips}, costs, flips.index[0], allow_short=True,
                     sizing="vol_target", target_vol=0.3, rebalance_band=0.1)
    sizes = ref.fills["size"].abs().to_numpy()
    assert (sizes[1:] > 1.5 * sizes[:-1]).any()  # a flip trades the position twice over
    assert_same(ref, fast, "flip and band")


def test_points_it_cannot_model_are_refused_with_the_reason() -> None:
    assert "sizer" in unsupported({"sizing": "sizer"})
    assert "streaming" in unsupported({"stream": object()})
    assert unsupported({"entry_threshold": 0.1, "sizing": "vol_target"}) is None
    with pytest.raises(ValueError, match="cannot serve this point"):
        simulate({}, {}, sizing="sizer")


def test_tickers_on_different_calendars_are_refused(universes: dict) -> None:
    from lstm_strategy.backtest.fastsim import FastEvaluator

    three = universes["three"]
    ragged = {"AAPL": three["AAPL"], "MSFT": three["MSFT"].drop(three["MSFT"].index[10])}
    forecasts = {t: f["Close"].pct_change() for t, f in ragged.items()}
    with pytest.raises(ValueError, match="MSFT's bars are on another calendar"):
        FastEvaluator(ragged, forecasts)


def _random_point(rng: np.random.Generator) -> dict:
    entry = float(rng.choice([0.0, 0.0005, 0.002]))
    return {"entry_threshold": entry, "exit_threshold": entry * float(rng.choice([0, 0.5])),
            "allow_short": bool(rng.integers(2)),
            "sizing": str(rng.choice(["fixed", "vol_target", "confidence"])),
            "fraction": float(rng.choice([0.3, 0.95, 1.0])),
            "zscore_window": int(rng.choice([0, 0, 15])),
            "stop_loss": float(rng.choice([0.0, 0.02])),
            "take_profit": float(rng.choice([0.0, 0.08])),
            "min_hold_bars": int(rng.choice([0, 4])),
            "rebalance_band": float(rng.choice([0.0, 0.05])),
            "confidence_scale": float(rng.choice([0.005, 1.0])),
            "target_vol": 0.2, "vol_window": int(rng.choice([10, 20]))}


def test_run_many_scores_equal_the_frames_of_run_point_by_point(universes: dict) -> None:
    """`run_many` (one compiled call, no frames) gives, for every point, exactly what
    `strategy_metrics` gives on `run()`'s equity, fills and trades as the sweep slices them
    (in sample and hold-out), and the same per-bar returns; with holes in the calendar,
    a start at the first bar or later, one ticker or three, and a 9,000-bar hourly file
    (longer than NumPy's 8,192-element buffer)."""
    from lstm_strategy.backtest.fastsim import FastEvaluator
    from lstm_strategy.data import gap_after
    from lstm_strategy.evaluation.metrics import bar_returns, infer_periods_per_year
    from lstm_strategy.sweep.tasks import holdout_start, score_run

    from .conftest import hourly_bars

    rng = np.random.default_rng(5)
    hourly = hourly_bars(pd.bdate_range("2004-01-01", periods=380))
    cases = [universes["one"], universes["three"], {"FX": hourly.iloc[:9000]}]
    holed = {t: f.drop(f.index[200:260]) for t, f in universes["one"].items()}
    cases.append(holed)
    for case, bars in enumerate(cases):
        index = next(iter(bars.values())).index
        forecasts = {t: pd.Series(rng.normal(0.0002, 0.01, len(f)), index=f.index)
                     for t, f in bars.items()}
        evaluator = FastEvaluator(bars, forecasts)
        ppy, gaps = infer_periods_per_year(index), index[gap_after(index)]
        assert case != 3 or len(gaps)
        points = [_random_point(rng) for _ in range(12)]
        for start in (index[0], index[int(rng.integers(30, 200))]):
            for share in (0.0, 0.3):
                split = holdout_start(index, start, share)
                broker = {"commission_bps": 5.0, "slippage_bps": 2.0,
                          "fill": str(rng.choice(["next_open", "close"]))}
                many = evaluator.run_many(points, trade_start=start, split=split,
                                          periods_per_year=ppy, gaps=gaps, returns=True,
                                          **broker)
                for params, got in zip(points, many, strict=True):
                    run = evaluator.run(trade_start=start, **broker, **params)
                    metrics, held_out = score_run(run.equity, run.fills, run.trades, split,
                                                  ppy, gaps)
                    assert got["metrics"] == metrics, (case, params)
                    assert got["holdout"] == held_out, (case, params)
                    assert got["final_value"] == run.equity["value"].iloc[-1]
                    cut = (run.equity.index.searchsorted(split) if split is not None
                           else len(run.equity))
                    pd.testing.assert_series_equal(got["returns"],
                                                   bar_returns(run.equity["value"].iloc[:cut]),
                                                   check_exact=True, check_freq=False,
                                                   check_index_type=False)


def test_a_baseline_served_fast_is_backtraders_run(universes: dict) -> None:
    """forecast_backtest (the default run's naive-forecast baseline) gives what backtrader
    gives for the same forecasts: frames, every metric, the NaN-forecast count."""
    from lstm_strategy.backtest.cerebro import forecast_backtest
    from lstm_strategy.backtest.fastsim import warm_up
    from lstm_strategy.evaluation.metrics import naive_forecasts

    warm_up()  # compiled and in Numba's disk cache: what lets it serve
    bars = universes["three"]
    forecasts = {t: naive_forecasts(f["Close"], 1)["naive_last"] for t, f in bars.items()}
    broker = BrokerConfig(commission_bps=5.0, slippage_bps=2.0)
    start = bars["AAPL"].index[0]  # the first bar has no naive forecast
    params = {"allow_short": True, "fraction": 0.9, "periods_per_year": 252}
    ref = backtest(bars, LSTMStrategy, broker=broker, trade_start=start, name="naive",
                   forecasts=forecasts, **params)
    fast = forecast_backtest(bars, forecasts, broker=broker, trade_start=start, name="naive",
                             **params)
    assert (ref.engine, fast.engine) == ("backtrader", "fast")
    assert_same(ref, fast, "naive")
    assert list(fast.metrics) == list(ref.metrics)
    for key, value in ref.metrics.items():
        assert fast.metrics[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key
    assert fast.nan_forecasts == ref.nan_forecasts == 3
