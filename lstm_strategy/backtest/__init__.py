"""The backtrader side: feeds, the trading rules, strategies, baselines and `backtest()`."""

from .baselines import BuyAndHold, SmaCross
from .cerebro import BacktestResult, backtest, backtrader_timeframe, make_cerebro
from .decision import (
    RULE_PARAMS,
    Position,
    Rules,
    check_rules,
    decide,
    rank_targets,
    topk_dropout_targets,
)
from .feed import make_feed
from .strategies import CrossSectionalStrategy, EquityRecorder, LSTMStrategy, RecordingStrategy

__all__ = ["RULE_PARAMS", "BacktestResult", "BuyAndHold", "CrossSectionalStrategy",
           "EquityRecorder", "LSTMStrategy", "Position", "RecordingStrategy", "Rules",
           "SmaCross", "backtest", "backtrader_timeframe", "check_rules", "decide",
           "make_cerebro", "make_feed", "rank_targets",
           "topk_dropout_targets"]
