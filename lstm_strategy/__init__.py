"""lstm-strategy: backtest LSTM forecasters inside backtrader, walk-forward, without lookahead.

Public API (everything else is an implementation detail):
    load_ohlcv, load_many, load_exogenous   validated bars and exogenous series
    build_features, make_target, FeatureConfig, warmup_bars
    ModelConfig, TrainConfig, walk_forward, fit_forecaster, Forecaster
    LSTMStrategy, EquityRecorder, make_feed  the backtrader side
    forecast_metrics, strategy_metrics
    ExperimentConfig, load_config, run_experiment, backtest, write_run
"""

__version__ = "0.1.0"

from .config import ConfigError, ExperimentConfig, load_config
from .data import DataError, load_exogenous, load_many, load_ohlcv
from .features import FeatureConfig, build_features, make_target, warmup_bars
from .feed import make_feed
from .metrics import forecast_metrics, forecast_report, strategy_metrics
from .model import ModelConfig
from .predictor import CheckpointError, Forecaster, resolve_device
from .report import write_run
from .run import backtest, make_cerebro, run_experiment
from .strategy import EquityRecorder, LSTMStrategy
from .train import TrainConfig, WalkForwardResult, fit_forecaster, walk_forward

__all__ = [
    "CheckpointError", "ConfigError", "DataError", "EquityRecorder", "ExperimentConfig",
    "FeatureConfig", "Forecaster", "LSTMStrategy", "ModelConfig", "TrainConfig",
    "WalkForwardResult", "backtest", "build_features", "fit_forecaster", "forecast_metrics",
    "forecast_report", "load_config", "load_exogenous", "load_many", "load_ohlcv",
    "make_cerebro", "make_feed", "make_target", "resolve_device", "run_experiment",
    "strategy_metrics", "walk_forward", "warmup_bars", "write_run",
]
