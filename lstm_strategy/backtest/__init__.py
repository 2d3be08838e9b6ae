"""The backtrader side: feeds, the trading rules, strategies, baselines and `backtest()`."""

import importlib

# each name loads its module on first use (PEP 562): the trading rules (decision) that a
# config checks need neither backtrader nor the strategies
_EXPORTS = {
    **dict.fromkeys(("BuyAndHold", "SmaCross"), ".baselines"),
    **dict.fromkeys(("BacktestResult", "backtest", "backtrader_timeframe", "make_cerebro"),
                    ".cerebro"),
    **dict.fromkeys(("RULE_PARAMS", "Position", "Rules", "check_rules", "decide",
                     "rank_targets", "topk_dropout_targets"), ".decision"),
    "make_feed": ".feed",
    **dict.fromkeys(("CrossSectionalStrategy", "EquityRecorder", "LSTMStrategy",
                     "RecordingStrategy"), ".strategies"),
}


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    if name != "backtest":  # the submodule of that name would shadow it otherwise
        globals()[name] = value
    return value


__all__ = sorted(_EXPORTS)
