"""lstm-strategy: backtest LSTM forecasters inside backtrader, walk-forward, without lookahead."""

__version__ = "0.1.0"
