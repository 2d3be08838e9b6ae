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


def traded(returns: np.ndarray) -> np.ndarray:
    """The one rule for which trials DSR and PBO count: those whose per-bar returns vary
    (a trial that never trades has a flat equity curve and no Sharpe ratio; counting it
    as the worst, or as anything, would skew both). `returns` is [bars, trials]; a mask
    over trials comes back."""
    matrix = np.asarray(returns, dtype=float)
    if matrix.ndim == 1:
        matrix = matrix[:, None]
    if len(matrix) < 2:
        return np.zeros(matrix.shape[1], dtype=bool)
    return np.nanstd(matrix, axis=0, ddof=1) > 0


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
    per-bar Sharpe (their variance sets how far luck alone reaches). Trials without one
    (NaN: they never traded, see `traded`) are left out, as PBO leaves them out.
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
    Trials that never trade (`traded` is False) are left out, as DSR leaves them out;
    `n_left_out` says how many. Within a half, a trial that did not trade there has a
    Sharpe ratio of 0 (it held cash).
    """
    matrix = np.asarray(returns, dtype=float)
    active = traded(matrix)
    left_out = int((~active).sum())
    matrix = matrix[:, active]
    bars, trials = matrix.shape
    if trials < 2:
        return {"pbo": math.nan, "n_splits": 0, "logits": np.empty(0), "n_trials": trials,
                "n_left_out": left_out}
    n_blocks = max(2, min(n_blocks - n_blocks % 2, bars // 2 * 2))
    # trials with the same returns rank alike: each distinct column once, weighted by how
    # many trials share it, in order of first appearance (ties go to the first, as before)
    groups: dict[bytes, int] = {}
    owner = np.array([groups.setdefault(column.tobytes(), len(groups))
                      for column in np.ascontiguousarray(matrix.T)])
    weights = np.bincount(owner)
    matrix = matrix[:, np.unique(owner, return_index=True)[1]]
    edges = np.linspace(0, bars, n_blocks + 1).astype(int)
    sums = np.array([matrix[a:b].sum(axis=0) for a, b in itertools.pairwise(edges)])
    squares = np.array([(matrix[a:b] ** 2).sum(axis=0) for a, b in itertools.pairwise(edges)])
    counts = np.diff(edges).astype(float)
    half = n_blocks // 2
    chosen = np.array(list(itertools.combinations(range(n_blocks), half)))
    members = np.zeros((len(chosen), n_blocks), dtype=bool)
    members[np.arange(len(chosen))[:, None], chosen] = True
    # each half's Sharpe once: a split and its mirror share them, in and out swapped
    bits = members @ (1 << np.arange(n_blocks))
    where = {int(b): i for i, b in enumerate(bits)}
    halves = np.flatnonzero(members[:, 0])
    mirrors = np.array([where[int(bits[i]) ^ ((1 << n_blocks) - 1)] for i in halves])
    logits = np.empty(len(chosen))
    for start in range(0, len(halves), 256):
        one, other = halves[start:start + 256], mirrors[start:start + 256]
        first = _block_sharpe(sums, squares, counts, members[one])
        second = _block_sharpe(sums, squares, counts, members[other])
        logits[one] = _rank_logits(first, second, weights)
        logits[other] = _rank_logits(second, first, weights)
    return {"pbo": float((logits <= 0).mean()), "n_splits": len(logits), "logits": logits,
            "n_trials": trials, "n_left_out": left_out}


def _rank_logits(in_sharpe: np.ndarray, out_sharpe: np.ndarray, weights: np.ndarray
                 ) -> np.ndarray:
    """Per split (row): the logit of the in-sample winner's relative rank out of sample;
    column j stands for weights[j] trials."""
    best = np.argmax(np.where(np.isfinite(in_sharpe), in_sharpe, -np.inf), axis=1)
    mark = out_sharpe[np.arange(len(best)), best][:, None]
    below = ((out_sharpe < mark) * weights).sum(axis=1)
    level = ((out_sharpe == mark) * weights).sum(axis=1)
    rank = (below + 0.5 * (level - 1) + 1) / (weights.sum() + 1)
    return np.log(rank / (1 - rank))


def _block_sharpe(sums: np.ndarray, squares: np.ndarray, counts: np.ndarray,
                  members: np.ndarray) -> np.ndarray:
    """Sharpe per bar of each trial over each row's blocks ([rows, trials]); blocks are added
    one by one in order, so no figure depends on how many rows or trials came together."""
    total = np.zeros((len(members), sums.shape[1]))
    total_sq = np.zeros_like(total)
    for block in range(len(counts)):
        inside = members[:, block:block + 1]
        total += np.where(inside, sums[block], 0.0)
        total_sq += np.where(inside, squares[block], 0.0)
    n = (members * counts).sum(axis=1, keepdims=True)
    mean = total / n
    variance = (total_sq - n * mean ** 2) / np.maximum(n - 1, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(variance > 0, mean / np.sqrt(np.maximum(variance, 0)), 0.0)
