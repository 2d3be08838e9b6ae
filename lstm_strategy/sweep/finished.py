"""A sweep's outcome, and the rerun of a finished sweep answered from its folder.

Rerunning the command of a sweep that has nothing left to do printed its summary after
loading torch, backtrader, Optuna and Bokeh (3 s, most of it imports): everything it
prints is in summary.json already. `finished_summary` reads that, and the ledger through
the standard library's sqlite3, and answers only when the folder provably holds this
sweep file's finished sweep (the file's digest, every planned trial finished, nothing
running, the report written); anything else goes the full way, which decides as before.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__
from ..processes import pid_alive
from ..resources import ready_file

if TYPE_CHECKING:
    import pandas as pd

    from .space import SweepConfig


@dataclass
class SweepResult:
    """A sweep's outcome: every trial, the chosen one, and how much of it may be luck."""

    folder: Path
    config: SweepConfig
    table: pd.DataFrame  # one row per finished trial (results.csv)
    best: dict | None  # trial, params, in-sample metrics, hold-out metrics
    dsr: dict | None  # Deflated Sharpe Ratio of the best trial
    pbo: dict | None  # Probability of Backtest Overfitting over all trials
    trainings: int  # model configs trained (not found in the cache) by this call
    returns: pd.DataFrame | None = None  # in-sample per-bar returns, a column per trial
    forecast_keys: dict = dataclasses.field(default_factory=dict)  # trial -> cache keys
    # what the report shows, when the sweep's workers computed it: backtrader's equity of
    # the rechecked trials (trial -> series) and buy & hold beside the best one
    # (sweep.tasks.buy_and_hold_task)
    curves: dict = dataclasses.field(default_factory=dict)
    buy_and_hold: dict | None = None


def source_digest(path: Path) -> str:
    """The sweep file's bytes and this package's version, hashed: the same digest means
    the same sweep as far as the ledger's fingerprint can tell (it covers the file's
    keys, not the base config's contents, nor does this)."""
    return hashlib.sha256(f"{__version__}\0".encode() + path.read_bytes()).hexdigest()[:16]


def lock_holder(path: Path) -> int | None:
    """The pid of another live process holding the sweep lock at `path` (None: free, or
    left by a dead driver)."""
    try:
        pid = int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return None
    return pid if pid and pid != os.getpid() and pid_alive(pid) else None


def finished_summary(sweep_file: str | Path, out: str | Path) -> dict | None:
    """summary.json of the sweep in `out` when that folder holds the finished sweep of
    `sweep_file` (a path or a ready sweep's name) and its report; None when anything may
    be left to do or to say (the full `sweep` then runs)."""
    path, folder = ready_file(sweep_file), Path(out)
    files = [folder / name for name in ("summary.json", "results.csv", "sweep_report.html",
                                        "study.db")]
    if path is None or not all(f.is_file() for f in files):
        return None
    if lock_holder(folder / "sweep.lock"):
        return None  # another driver: the full path says so
    try:
        summary = json.loads(files[0].read_text())
        if files[2].stat().st_mtime_ns < files[0].stat().st_mtime_ns:
            return None  # the report predates the summary: a run ended between the two
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict) or summary.get("source") != source_digest(path) or (
            not isinstance(summary.get("budget"), int)):
        return None
    try:
        with contextlib.closing(sqlite3.connect(files[3])) as db:
            rows = db.execute(
                "SELECT t.state, EXISTS(SELECT 1 FROM trial_user_attributes a WHERE "
                "a.trial_id = t.trial_id AND a.key = 'infrastructure') FROM trials t"
            ).fetchall()
    except sqlite3.Error:
        return None  # the full path names what is wrong with the ledger
    finished = sum(state in ("COMPLETE", "FAIL") and not lost for state, lost in rows)
    if any(state in ("RUNNING", "WAITING") for state, _ in rows) or (
            finished != summary.get("n_trials") or finished < summary["budget"]):
        return None
    return summary
