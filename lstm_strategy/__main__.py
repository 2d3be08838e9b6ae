"""`python -m lstm_strategy ...` is `lstm-backtest ...`."""

from .cli import entry

entry()
