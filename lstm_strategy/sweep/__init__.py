"""Parameter sweeps: train once per model config, backtest many strategy points, say how
much of the best result is luck (Deflated Sharpe Ratio, PBO) and check it on a hold-out.

Optuna (the ledger) and Ray (an optional backend) are imported only here. The names load
on first use, so `sweep.finished` (a finished sweep's rerun) needs none of the rest.
"""

import importlib

_EXPORTS = {"SweepResult": ".finished", "sweep": ".runner", "Range": ".space",
            "SweepConfig": ".space", "load_sweep": ".space"}


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lstm_strategy.sweep' has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)


__all__ = ["Range", "SweepConfig", "SweepResult", "load_sweep", "sweep"]
