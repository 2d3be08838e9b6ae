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

import importlib
import sys
import types

# name -> module: each loads on first use (PEP 562), so `import lstm_strategy` (and every
# CLI command) costs only what it touches: a finished sweep's rerun needs no torch
_EXPORTS = {
    **dict.fromkeys(("BuyAndHold", "CrossSectionalStrategy", "EquityRecorder", "LSTMStrategy",
                     "SmaCross", "make_cerebro", "make_feed"), ".backtest"),
    **dict.fromkeys(("ExperimentConfig", "load_config"), ".config"),
    **dict.fromkeys(("load_exogenous", "load_many", "load_ohlcv"), ".data"),
    **dict.fromkeys(("CheckpointError", "ConfigError", "DataError", "DeviceError",
                     "LedgerError"), ".errors"),
    **dict.fromkeys(("forecast_metrics", "forecast_report", "strategy_metrics"),
                    ".evaluation.metrics"),
    "run_experiment": ".experiment",
    **dict.fromkeys(("FeatureConfig", "build_features", "make_target", "warmup_bars"),
                    ".features"),
    **dict.fromkeys(("Forecaster", "resolve_device"), ".forecaster"),
    **dict.fromkeys(("ForecastModel", "ModelConfig", "SequenceModel", "register"), ".models"),
    **dict.fromkeys(("TrainConfig", "WalkForwardResult", "fit_forecaster", "walk_forward"),
                    ".training"),
}


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lstm_strategy' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | {"audit", "backtest"})


class _Package(types.ModuleType):
    """`lstm_strategy.backtest` and `lstm_strategy.audit` are functions, though a submodule
    of each name exists: importing a submodule sets its parent's attribute to it, which
    made `lstm_strategy.audit` the module after its first call. These properties keep
    the functions (the submodules stay in sys.modules)."""

    @property
    def backtest(self) -> object:
        return importlib.import_module(".backtest.cerebro", __name__).backtest

    @backtest.setter
    def backtest(self, module: object) -> None:
        pass  # the import system announcing the submodule: sys.modules has it

    @property
    def audit(self) -> object:
        return _audit_entry

    @audit.setter
    def audit(self, module: object) -> None:
        pass


def _audit_entry(*args: object, **kwargs: object) -> object:
    """Audit an experiment for lookahead (see `lstm_strategy.audit.audit`)."""
    from .audit import audit

    return audit(*args, **kwargs)


_audit_entry.__name__ = _audit_entry.__qualname__ = "audit"


def write_run(*args: object, **kwargs: object) -> object:
    """Write a run folder (see `reports.run.write_run`); loads matplotlib on first use."""
    from .reports.run import write_run as _write_run

    return _write_run(*args, **kwargs)


sys.modules[__name__].__class__ = _Package

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
