"""How much of the best backtest is luck: the Deflated Sharpe Ratio and the Probability of
Backtest Overfitting, as plain functions of arrays.

- `deflated_sharpe_ratio`: Bailey and Lopez de Prado (2014), "The Deflated Sharpe Ratio:
  Correcting for Selection Bias, Backtest Overfitting and Non-Normality". The best of N
  trials is compared with the Sharpe ratio the best of N unskilled trials would reach.
- `probability_of_backtest_overfitting`: Bailey, Borwein, Lopez de Prado and Zhu (2017),
  combinatorially symmetric cross-validation (CSCV) over the trials' per-bar returns.

Sharpe ratios here are per bar (not annualised), as in the papers.
"""

from __future__ import annotations

import itertools
import math
from statistics import NormalDist

import numpy as np

EULER_GAMMA = 0.5772156649015329
_NORMAL = NormalDist()


def sharpe_per_bar(returns: np.ndarray) -> float:
    """Mean over sample standard deviation of per-bar returns (NaN when flat)."""
    returns = np.asarray(returns, dtype=float)
    std = returns.std(ddof=1) if len(returns) > 1 else 0.0
    return float(returns.mean() / std) if std > 0 else math.nan


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """SR0: the expected best Sharpe of `n_trials` unskilled trials (paper, eq. 2)."""
    if n_trials < 2 or not sharpe_variance > 0:
        return 0.0
    first = _NORMAL.inv_cdf(1.0 - 1.0 / n_trials)
    second = _NORMAL.inv_cdf(1.0 - 1.0 / (n_trials * math.e))
    return math.sqrt(sharpe_variance) * ((1 - EULER_GAMMA) * first + EULER_GAMMA * second)


def probabilistic_sharpe_ratio(sharpe: float, benchmark: float, n_bars: int, skew: float,
                               kurtosis: float) -> float:
    """P(true Sharpe > benchmark) given an observed per-bar Sharpe (kurtosis not excess)."""
    denominator = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe ** 2
    if n_bars < 2 or not denominator > 0:
        return math.nan
    return _NORMAL.cdf((sharpe - benchmark) * math.sqrt(n_bars - 1) / math.sqrt(denominator))


def deflated_sharpe_ratio(best_returns: np.ndarray, trial_sharpes: np.ndarray) -> dict:
    """DSR of the best trial: PSR against the expected best Sharpe of as many unskilled trials.

    `best_returns`: the chosen trial's per-bar returns; `trial_sharpes`: every trial's
    per-bar Sharpe (their variance sets how far luck alone reaches).
    """
    returns = np.asarray(best_returns, dtype=float)
    sharpes = np.asarray(trial_sharpes, dtype=float)
    sharpes = sharpes[np.isfinite(sharpes)]
    sharpe = sharpe_per_bar(returns)
    centred = returns - returns.mean()
    std = returns.std()
    skew = float((centred ** 3).mean() / std ** 3) if std > 0 else 0.0
    kurtosis = float((centred ** 4).mean() / std ** 4) if std > 0 else 3.0
    variance = float(sharpes.var(ddof=1)) if len(sharpes) > 1 else 0.0
    benchmark = expected_max_sharpe(len(sharpes), variance)
    return {"dsr": probabilistic_sharpe_ratio(sharpe, benchmark, len(returns), skew, kurtosis),
            "sharpe_per_bar": sharpe, "expected_max_sharpe_per_bar": benchmark,
            "n_trials": len(sharpes), "sharpe_variance": variance, "n_bars": len(returns),
            "skew": skew, "kurtosis": kurtosis}


def probability_of_backtest_overfitting(returns: np.ndarray, n_blocks: int = 16) -> dict:
    """PBO by CSCV: how often the in-sample best trial ranks below the median out of sample.

    `returns` is [bars, trials]. The bars are cut into `n_blocks` (even) contiguous
    blocks; every half of them in turn is the in-sample set and the rest out of sample.
    PBO is the share of splits where the in-sample winner's out-of-sample rank logit is
    <= 0. Near 0.5 for trials that are all noise, near 0 for one that truly dominates.
    """
    matrix = np.asarray(returns, dtype=float)
    bars, trials = matrix.shape
    if trials < 2:
        return {"pbo": math.nan, "n_splits": 0, "logits": np.empty(0)}
    n_blocks = max(2, min(n_blocks - n_blocks % 2, bars // 2 * 2))
    edges = np.linspace(0, bars, n_blocks + 1).astype(int)
    sums = np.array([matrix[a:b].sum(axis=0) for a, b in itertools.pairwise(edges)])
    squares = np.array([(matrix[a:b] ** 2).sum(axis=0) for a, b in itertools.pairwise(edges)])
    counts = np.diff(edges).astype(float)
    logits = []
    for chosen in itertools.combinations(range(n_blocks), n_blocks // 2):
        inside = np.zeros(n_blocks, dtype=bool)
        inside[list(chosen)] = True
        in_sharpe = _block_sharpe(sums[inside], squares[inside], counts[inside])
        out_sharpe = _block_sharpe(sums[~inside], squares[~inside], counts[~inside])
        best = int(np.nanargmax(np.where(np.isfinite(in_sharpe), in_sharpe, -np.inf)))
        # relative rank of the in-sample winner out of sample, in (0, 1)
        rank = (np.sum(out_sharpe < out_sharpe[best]) + 0.5 * (np.sum(
            out_sharpe == out_sharpe[best]) - 1) + 1) / (trials + 1)
        logits.append(math.log(rank / (1 - rank)))
    logits = np.asarray(logits)
    return {"pbo": float((logits <= 0).mean()), "n_splits": len(logits), "logits": logits}


def _block_sharpe(sums: np.ndarray, squares: np.ndarray, counts: np.ndarray) -> np.ndarray:
    n = counts.sum()
    mean = sums.sum(axis=0) / n
    variance = (squares.sum(axis=0) - n * mean ** 2) / max(n - 1, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(variance > 0, mean / np.sqrt(np.maximum(variance, 0)), np.nan)
