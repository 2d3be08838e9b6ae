"""Parameter sweeps: train once per model config, backtest many strategy points, say how
much of the best result is luck (Deflated Sharpe Ratio, PBO) and check it on a hold-out.

Optuna (the ledger) and Ray (an optional backend) are imported only here.
"""

from .runner import SweepResult, sweep
from .space import Range, SweepConfig, load_sweep

__all__ = ["Range", "SweepConfig", "SweepResult", "load_sweep", "sweep"]
