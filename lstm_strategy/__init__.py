"""lstm-strategy: backtest LSTM forecasters inside backtrader, walk-forward, without lookahead.

The short public API; everything else is importable from its module or subpackage
(models, backtest, evaluation). Importing the package starts nothing and draws nothing:
matplotlib loads only when a report is written (`write_run`).

    load_ohlcv, load_many, load_exogenous     validated bars and exogenous series
    build_features, make_target, FeatureConfig, warmup_bars
    ModelConfig, SequenceModel, ForecastModel, register   your own model (models/user.py)
    TrainConfig, walk_forward, fit_forecaster, Forecaster
    LSTMStrategy, CrossSectionalStrategy, BuyAndHold, SmaCross, EquityRecorder, make_feed,
    backtest, make_cerebro
    forecast_metrics, forecast_report, strategy_metrics
    ExperimentConfig, load_config, run_experiment, write_run, audit
"""

__version__ = "0.1.1"

from .backtest import (
    BuyAndHold,
    CrossSectionalStrategy,
    EquityRecorder,
    LSTMStrategy,
    SmaCross,
    backtest,
    make_cerebro,
    make_feed,
)
from .config import ExperimentConfig, load_config
from .data import load_exogenous, load_many, load_ohlcv
from .errors import CheckpointError, ConfigError, DataError, DeviceError, LedgerError
from .evaluation.metrics import forecast_metrics, forecast_report, strategy_metrics
from .experiment import run_experiment
from .features import FeatureConfig, build_features, make_target, warmup_bars
from .forecaster import Forecaster, resolve_device
from .models import ForecastModel, ModelConfig, SequenceModel, register
from .training import TrainConfig, WalkForwardResult, fit_forecaster, walk_forward


def audit(*args: object, **kwargs: object) -> object:
    """Audit an experiment for lookahead (see `lstm_strategy.audit.audit`)."""
    from .audit import audit as _audit

    return _audit(*args, **kwargs)


def write_run(*args: object, **kwargs: object) -> object:
    """Write a run folder (see `reports.run.write_run`); loads matplotlib on first use."""
    from .reports.run import write_run as _write_run

    return _write_run(*args, **kwargs)


__all__ = [
    "BuyAndHold",
    "CheckpointError",
    "ConfigError",
    "CrossSectionalStrategy",
    "DataError",
    "DeviceError",
    "EquityRecorder",
    "ExperimentConfig",
    "FeatureConfig",
    "ForecastModel",
    "Forecaster",
    "LSTMStrategy",
    "LedgerError",
    "ModelConfig",
    "SequenceModel",
    "SmaCross",
    "TrainConfig",
    "WalkForwardResult",
    "audit",
    "backtest",
    "build_features",
    "fit_forecaster",
    "forecast_metrics",
    "forecast_report",
    "load_config",
    "load_exogenous",
    "load_many",
    "load_ohlcv",
    "make_cerebro",
    "make_feed",
    "make_target",
    "register",
    "resolve_device",
    "run_experiment",
    "strategy_metrics",
    "walk_forward",
    "warmup_bars",
    "write_run",
]
