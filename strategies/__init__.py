"""Ready strategies and baselines that configs name, and their YAML configs.

`STRATEGIES` maps the names used in configs to backtrader strategy classes. The YAML
files beside this module are complete experiments: `lstm-backtest run --config
strategies/NAME.yaml`.
"""

from lstm_strategy.strategy import LSTMStrategy

from .baselines import BuyAndHold, SmaCross

STRATEGIES = {
    "lstm": LSTMStrategy,
    "buy_and_hold": BuyAndHold,
    "sma_cross": SmaCross,
}

__all__ = ["STRATEGIES", "BuyAndHold", "LSTMStrategy", "SmaCross"]
