"""The sweep driver: an Optuna study in SQLite as the ledger, tasks on a backend.

The driver alone writes the ledger (ask and tell); workers only compute. Each distinct
model-side config is trained once (its forecasts go to the forecast cache) and every
strategy point on it is a separate backtest task. Rerunning the same command resumes:
finished trials are kept, trials that were running when the driver died are run again
(not duplicated), and a trial that raises is recorded FAILED with its error while the
others go on. Ranking uses the in-sample span only; the hold-out span is reported apart.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import multiprocessing
import os
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import set_dotted
from ..errors import BAD_INPUT, ConfigError, LedgerError
from ..evaluation.stats import (
    deflated_sharpe_ratio,
    probability_of_backtest_overfitting,
    sharpe_per_bar,
)
from ..processes import worker_init
from .backends import WorkerLost, make_backend, start_method
from .finished import SweepResult, lock_holder
from .ledger import Ledger
from .space import SweepConfig, load_sweep
from .tasks import backtest_task, buy_and_hold_task, returns_matrix, train_task

STUDY = "sweep"


class _Lock:
    """One driver per sweep folder; a lock left by a dead driver is taken over."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> _Lock:
        pid = lock_holder(self.path)
        if pid:
            raise ConfigError(f"{self.path.parent}: another sweep (pid {pid}) is running "
                              f"in this folder; wait for it or choose another --out.")
        self.path.write_text(str(os.getpid()))
        return self

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)




class _Progress:
    """Trials done, failed, best so far and ETA: a bar on a terminal, lines elsewhere."""

    def __init__(self, total: int, done: int, objective: str, progress: object) -> None:
        self.total, self.objective, self.started, self.first = total, objective, time.time(), done
        self.say = progress if callable(progress) else None
        self.bar = None
        if progress is True or (progress is None and sys.stderr.isatty()):
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, initial=done, desc="sweep", unit="trial")
        elif progress is None:
            self.say = lambda line: print(line, file=sys.stderr, flush=True)

    def update(self, done: int, failed: int, best: tuple[int, float] | None) -> None:
        best_text = f"best {self.objective} {best[1]:.3f} (trial {best[0]})" if best else "no best yet"
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
            self.bar.set_postfix_str(f"{failed} failed, {best_text}")
        if self.say is not None:
            elapsed = time.time() - self.started
            rate = elapsed / max(done - self.first, 1)
            self.say(f"sweep: {done}/{self.total} trials done, {failed} failed, {best_text}; "
                     f"{elapsed:.0f}s elapsed, ETA {rate * (self.total - done):.0f}s")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _clean(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return _clean(value.item())
    if isinstance(value, pd.Timestamp):
        return str(value)
    return value


def _open_study(config: SweepConfig, folder: Path) -> tuple[object, object, int]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # a new ledger gets this Optuna's schema: its compatibility check (alembic, a third of
    # opening) is for ledgers an older Optuna may have written
    new = not (folder / "study.db").exists()
    storage = optuna.storages.RDBStorage(f"sqlite:///{folder / 'study.db'}",
                                         skip_compatibility_check=new)
    _fast_commits(storage)
    sampler = (optuna.samplers.TPESampler(seed=config.seed) if config.search == "tpe"
               else optuna.samplers.RandomSampler(seed=config.seed))
    study = optuna.create_study(storage=storage, study_name=STUDY, sampler=sampler,
                                direction=config.direction, load_if_exists=True)
    fingerprint = study.user_attrs.get("fingerprint")
    if fingerprint is not None and fingerprint != config.fingerprint():
        raise ConfigError(f"{folder} holds another sweep (different base, keys or search); "
                          f"choose another --out to start a new one.")
    study.set_user_attr("fingerprint", config.fingerprint())
    study_id = storage.get_study_id_from_name(STUDY)
    plan = config.plan()
    if plan is None:
        # adaptive search: trials that were running when a driver died are asked again
        for trial in study.get_trials(deepcopy=False):
            if trial.state == optuna.trial.TrialState.RUNNING:
                storage.set_trial_state_values(
                    storage.get_trial_id_from_study_id_trial_number(study_id, trial.number),
                    optuna.trial.TrialState.WAITING)
    return study, storage, len(plan) if plan is not None else config.budget()


@dataclass
class _Slot:
    """One trial of the ledger as the driver holds it."""

    trial_id: int
    number: int
    params: dict
    identity: dict = dataclasses.field(default_factory=dict)  # model key and seed


def _planned_slots(config: SweepConfig, study: object, ledger: Ledger) -> list[_Slot]:
    """The plan's points not finished yet, each with its trial (a dead driver's running
    trials are taken over, not duplicated); new trials are created in one transaction."""
    import optuna

    done, running = set(), {}
    for trial in study.get_trials(deepcopy=False):
        point = trial.user_attrs.get("point")
        if point is None:
            continue
        if trial.state == optuna.trial.TrialState.RUNNING:
            running[point] = trial
        elif not trial.user_attrs.get("infrastructure"):
            done.add(point)
    plan = config.plan()
    slots = {point: _Slot(ledger.storage.get_trial_id_from_study_id_trial_number(
        ledger.study_id, trial.number), trial.number, plan[point])
        for point, trial in running.items()}
    fresh = [(point, params) for point, params in enumerate(plan)
             if point not in done and point not in running]
    for (point, params), (trial_id, number) in zip(
            fresh, ledger.create(fresh, config.distributions()), strict=True):
        slots[point] = _Slot(trial_id, number, params)
    return [slots[point] for point in sorted(slots)]


def _fast_commits(storage: object) -> None:
    """SQLite in write-ahead-log mode, synced at checkpoints: a commit costs far less, and a
    killed driver still loses no committed trial (only an OS crash could)."""
    import sqlalchemy

    def pragmas(connection: object, _record: object) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    sqlalchemy.event.listen(storage.engine, "connect", pragmas)
    storage.engine.dispose()  # new connections from here on get the pragmas


def _finished(study: object) -> list:
    """The trials that count: complete, or failed by their own error. A trial failed by the
    infrastructure (its worker lost) does not: a rerun runs its point again."""
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)
    return [t for t in study.get_trials(deepcopy=False)
            if t.state in states and not t.user_attrs.get("infrastructure")]


class _Returns:
    """Finished trials' per-bar in-sample returns (for PBO), a file per ledger commit:
    written just before the commit, so every trial the ledger holds has its returns on
    disk (a batch whose commit never came is computed again by the next run and written
    again; later files win)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder / "returns"
        self.pending: dict[int, pd.Series] = {}

    def add(self, number: int, returns: pd.Series) -> None:
        self.pending[number] = returns

    def write(self) -> None:
        if not self.pending:
            return
        self.folder.mkdir(exist_ok=True)
        pending, self.pending = self.pending, {}
        series = list(pending.values())
        batch = len(list(self.folder.glob("batch_*.npz")))
        np.savez(self.folder / f"batch_{batch:06d}.npz", numbers=np.array(list(pending)),
                 lengths=np.array([len(r) for r in series]),
                 stamps=np.concatenate([r.index.as_unit("ns").asi8 for r in series]),
                 values=np.concatenate([r.to_numpy(np.float64) for r in series]))

    @staticmethod
    def load(folder: Path, numbers: list[int]) -> dict[int, pd.Series]:
        found: dict[int, pd.Series] = {}
        for path in sorted((folder / "returns").glob("batch_*.npz")):
            with np.load(path) as batch:  # each key read once: an npz re-reads on access
                held, lengths, stamps, values = (batch[k] for k in (
                    "numbers", "lengths", "stamps", "values"))
            ends = np.cumsum(lengths)
            for number, end, length in zip(held, ends, lengths, strict=True):
                part = slice(end - length, end)
                found[int(number)] = pd.Series(
                    values[part], name="return",
                    index=pd.DatetimeIndex(stamps[part].view("M8[ns]")))
        for number in set(numbers) - set(found):  # folders written before the batch files
            legacy = folder / "returns" / f"trial_{number}.csv"
            if legacy.is_file():
                found[number] = pd.read_csv(legacy, index_col="date", parse_dates=True)["return"]
        return {n: found[n] for n in numbers if n in found}


def sweep(config: SweepConfig | str | Path, out: str | Path, *, workers: int | None = None,
          backend: str | None = None, address: str | None = None, refresh: bool = False,
          progress: object = None,
          report: Callable[[SweepResult], None] | None = None) -> SweepResult:
    """Run (or resume) a sweep into the folder `out`; see the module docstring.

    `workers` and `backend` override the sweep file's; `refresh` retrains every model
    config once even when the forecast cache holds it; `progress` as in `walk_forward`.
    `report` is called with the result when it changed: the page is a layer above this
    one (`lstm_strategy.reports.sweep.write_sweep_report`, which the CLI passes).
    """

    try:
        import optuna  # noqa: F401 - the ledger
    except ImportError:
        raise ConfigError("lstm-backtest sweep keeps its ledger in an Optuna study, and Optuna "
                          "is not installed: pip install 'lstm-strategy[sweep]' (Optuna and "
                          "Numba; add [ray] for a Ray cluster).") from None
    if not isinstance(config, SweepConfig):
        config = load_sweep(config)
    config = dataclasses.replace(config, workers=workers or config.workers,
                                 backend=backend or config.backend)
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder}: is a file, not a sweep folder; choose another --out.")
    check_ledger(folder / "study.db")
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with _Lock(folder / "sweep.lock"):
            study, storage, budget = _open_study(config, folder)
            before = len(_finished(study))
            trainings, runner = _run_trials(config, study, storage, budget, folder, address,
                                            refresh, progress)
            try:
                unchanged = (len(_finished(study)) == before
                             and (folder / "sweep_report.html").exists())
                return _summarise(config, study, folder, trainings,
                                  None if unchanged else report, reuse=unchanged,
                                  runner=runner)
            finally:
                if runner is not None:
                    runner.close()
    except (*BAD_INPUT, ImportError):
        if created:  # refused before any work: leave no folder behind
            shutil.rmtree(folder, ignore_errors=True)
        raise


_SQLITE_MAGIC = b"SQLite format 3\x00"


def check_ledger(path: Path) -> None:
    """Refuse a study.db that is not a readable SQLite file (truncated, overwritten, empty),
    naming the file and the way out; nothing in the folder is touched."""
    if not path.exists():
        return
    fix = (f"Move it away (e.g. mv {path} {path}.broken) to start the sweep over; "
           f"results.csv beside it keeps the last good table.")
    if path.stat().st_size == 0:
        raise LedgerError(f"{path}: the sweep ledger is empty (0 bytes), so it holds no "
                          f"trials and cannot be resumed. {fix}")
    with path.open("rb") as handle:
        head = handle.read(16)
    if head != _SQLITE_MAGIC:
        raise LedgerError(f"{path}: not a SQLite file (an Optuna study); it was overwritten "
                          f"or is not a sweep ledger. {fix}")
    try:
        with contextlib.closing(sqlite3.connect(path)) as db:
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
            db.execute("SELECT count(*) FROM trials").fetchone()
    except sqlite3.DatabaseError as exc:
        raise LedgerError(f"{path}: the sweep ledger cannot be read ({exc}); it is "
                          f"truncated or damaged. {fix}") from None
    if verdict != "ok":
        raise LedgerError(f"{path}: the sweep ledger is damaged ({verdict}). {fix}")


def _compile_in_background() -> multiprocessing.process.BaseProcess:
    """Compile the fast evaluator's loops into Numba's disk cache in a child process
    (started as the workers are), while the sweep trains its first model; it ends with
    the driver, however that ends. Join it, then `warm_up()` loads the cache."""
    process = multiprocessing.get_context(start_method()).Process(
        target=_compile, args=(os.getpid(),), daemon=True, name="lstm-strategy-compile")
    process.start()
    return process


def _compile(parent: int) -> None:
    from ..backtest.fastsim import warm_up

    worker_init(parent)
    warm_up()


def _run_trials(config: SweepConfig, study: object, storage: object, budget: int,
                folder: Path, address: str | None, refresh: bool, progress: object
                ) -> tuple[int, object | None]:
    """Run the trials not finished yet; returns the trainings and the backend, still up
    (for the recheck; None when nothing was left to run)."""
    import optuna

    distributions = config.distributions()
    finished = _finished(study)
    meter = _Progress(budget, len(finished), config.objective, progress)
    sign = 1 if config.direction == "maximize" else -1
    best = max(((t.number, t.value) for t in finished if t.value is not None),
               key=lambda p: sign * p[1], default=None)
    failed = sum(t.state == optuna.trial.TrialState.FAIL for t in finished)
    done = len(finished)
    if done >= budget:
        meter.close()
        return 0, None
    compiling = None
    if config.engine != "backtrader" and config.backend == "local":
        from ..backtest.fastsim import kernel_cached, warm_up
        if kernel_cached():
            warm_up()  # loaded once here, inherited by forked workers
        else:  # a fresh machine: compile while the first model trains
            compiling = _compile_in_background()
    runner = make_backend(config.backend, config.workers, address)
    trained_keys: dict[str, dict] = {}  # model key -> forecast cache keys by ticker
    waiting: dict[str, list] = {}  # model key -> trials waiting for its forecasts
    handles: dict[object, tuple] = {}
    asked: dict[int, object] = {}
    trainings = 0
    planned = config.plan() is not None
    study_id = storage.get_study_id_from_name(STUDY)
    returns = _Returns(folder)
    ledger = Ledger(storage, study_id, before_commit=returns.write)

    def tell(trial: _Slot, state: object, value: float | None = None,
             attrs: dict | None = None) -> None:
        nonlocal done, failed, best
        ledger.finish(trial.trial_id, state,
                      value if state == optuna.trial.TrialState.COMPLETE else None, attrs or {})
        asked.pop(trial.number, None)
        done += 1
        if state == optuna.trial.TrialState.FAIL:
            failed += 1
        elif best is None or sign * value > sign * best[1]:
            best = (trial.number, value)
        meter.update(done, failed, best)

    def fail(trial: _Slot, error: str, **attrs: object) -> None:
        tell(trial, optuna.trial.TrialState.FAIL,
             attrs={"trial": trial.identity, "error": error[-2000:], **attrs})

    outcome_keys: dict[int, dict] = {}
    sides: dict[str, tuple[str, int]] = {}  # model-side params -> model key and seed
    try:
        base = config.experiment({}).to_dict()
    except (ConfigError, ValueError):
        base = None  # valid only with some swept values: each point is built whole

    def point(params: dict) -> tuple[dict, str, int]:
        """A point's experiment as plain data, its model key and seed. The strategy side
        is checked by the worker (a bad point fails there, recorded with the reason);
        the model side is built and checked once per distinct model-side setting."""
        if base is None:
            experiment = config.experiment(params)
            tree = experiment.to_dict()
            return tree, config.model_key(experiment, tree), experiment.train.seed
        tree = copy.deepcopy(base)
        for dotted, value in params.items():
            set_dotted(tree, dotted, value)
        model_side = {k: v for k, v in params.items() if config.model_side(k)}
        side = json.dumps(model_side, sort_keys=True, default=str)
        if side not in sides:
            experiment = config.experiment(model_side)
            sides[side] = (config.model_key(experiment), experiment.train.seed)
        return (tree, *sides[side])

    def submit_backtest(trial: object, tree: dict, keys: dict) -> None:
        nonlocal compiling
        if compiling is not None:  # the first point: the compiled loops are on disk now
            compiling.join()
            warm_up()  # loaded here (or compiled, had the process failed)
            compiling = None
        outcome_keys[trial.number] = keys
        handle = runner.submit(backtest_task, tree, keys, config.holdout, False, config.engine)
        handles[handle] = ("backtest", trial, tree)

    try:
        queue = _planned_slots(config, study, ledger) if planned else []
        while done < budget:
            room = budget - done - len(asked)
            wave = len(queue) if planned else min(room, config.workers - len(asked))
            for _ in range(max(0, wave)):
                if planned:
                    trial = queue.pop(0)
                else:
                    ledger.flush()  # the sampler learns from every finished trial
                    asked_trial = study.ask(distributions)
                    trial = _Slot(storage.get_trial_id_from_study_id_trial_number(
                        study_id, asked_trial.number), asked_trial.number, asked_trial.params)
                asked[trial.number] = trial
                params = {k: trial.params[k] for k in config.keys()}
                try:
                    tree, key, seed = point(params)
                except (ConfigError, ValueError) as exc:
                    fail(trial, f"invalid config: {exc}")
                    continue
                trial.identity = {"model_key": key, "seed": seed}
                if key in trained_keys:
                    submit_backtest(trial, tree, trained_keys[key])
                else:
                    if key not in waiting:
                        waiting[key] = []
                        handles[runner.submit(train_task, tree, refresh)] = ("train", key, None)
                    waiting[key].append((trial, tree))
            if not handles:
                break
            for handle in runner.wait(list(handles)):
                job, subject, tree = handles.pop(handle)
                if job == "train":
                    try:
                        outcome = runner.result(handle)
                    except Exception as exc:
                        for trial, _ in waiting.pop(subject):
                            fail(trial, f"training failed: {type(exc).__name__}: {exc}",
                                 **_infrastructure(exc))
                        continue
                    trainings += outcome["trained"]
                    trained_keys[subject] = outcome["keys"]
                    for trial, trial_tree in waiting.pop(subject):
                        submit_backtest(trial, trial_tree, outcome["keys"])
                    continue
                trial = subject
                try:
                    outcome = runner.result(handle)
                except Exception as exc:
                    fail(trial, f"{type(exc).__name__}: {exc}", **_infrastructure(exc))
                    continue
                metrics = {k: _clean(v) for k, v in outcome["metrics"].items()}
                record = {
                    **trial.identity, "metrics": metrics, "seconds": round(outcome["seconds"], 3),
                    "engine": outcome["engine"], "keys": outcome_keys.get(trial.number),
                    "holdout": None if outcome["holdout"] is None else
                    {k: _clean(v) for k, v in outcome["holdout"].items()},
                    "holdout_start": _clean(outcome["holdout_start"])}
                returns.add(trial.number, outcome["returns"])
                value = metrics.get(config.objective)
                if value is None:
                    fail(trial, f"{config.objective} is undefined for this trial (no "
                                f"position, or no variation in equity)", outcome=record)
                else:
                    tell(trial, optuna.trial.TrialState.COMPLETE, float(value), {"outcome": record})
    except BaseException:
        # finished trials are kept; asked but unfinished ones are run once by a rerun
        # (planned points are taken over by point; adaptive ones go back to the queue)
        ledger.flush()
        if not planned:
            for number in list(asked):
                storage.set_trial_state_values(
                    storage.get_trial_id_from_study_id_trial_number(study_id, number),
                    optuna.trial.TrialState.WAITING)
        runner.close(cancel=True)
        meter.close()
        raise
    ledger.flush()
    meter.close()
    return trainings, runner


def _infrastructure(error: Exception) -> dict:
    """Marks a failure that was the machine's, not the trial's (rerun on resume)."""
    return {"infrastructure": True} if isinstance(error, WorkerLost) else {}


class EngineMismatch(RuntimeError):
    """The fast evaluator and backtrader disagree on a point: its results cannot be trusted."""


def _recheck(config: SweepConfig, study: object, complete: pd.DataFrame,
             runner: object | None = None) -> dict[int, pd.Series]:
    """Re-run the top points the fast evaluator served through backtrader (on the sweep's
    workers when they are still up); any difference stops the sweep with an error naming
    the point. Returns backtrader's equity of each point it checked (the report's curves)."""
    if config.recheck <= 0 or "engine" not in complete:
        return {}
    served = complete[complete["engine"] == "fast"].sort_values(
        config.objective, ascending=config.direction == "minimize").head(config.recheck)
    checked = {}
    trials = study.get_trials(deepcopy=False)
    jobs = []
    for number in served["trial"].astype(int):
        trial = trials[number]
        outcome = trial.user_attrs.get("outcome", {})
        experiment = config.experiment({k: trial.params[k] for k in config.keys()})
        args = (experiment.to_dict(), outcome["keys"], config.holdout, True, "backtrader")
        jobs.append((number, trial, outcome,
                     runner.submit(backtest_task, *args) if runner else backtest_task(*args)))
    for number, trial, outcome, job in jobs:
        again = runner.result(job) if runner else job
        for part in ("metrics", "holdout"):
            fast, slow = outcome.get(part) or {}, again[part] or {}
            for key, value in slow.items():
                other = fast.get(key)
                value = _clean(value)
                if (value is None) != (other is None) or (
                        value is not None and not math.isclose(value, other, rel_tol=1e-9,
                                                               abs_tol=1e-12)):
                    raise EngineMismatch(
                        f"trial {number} {trial.params}: the fast evaluator gave {part} "
                        f"{key}={other!r}, backtrader {value!r}. Rerun with engine: "
                        f"backtrader, and report this point.")
        checked[number] = again["equity"]
    return checked


def _summarise(config: SweepConfig, study: object, folder: Path, trainings: int,
               report: Callable[[SweepResult], None] | None, reuse: bool = False,
               runner: object | None = None
               ) -> SweepResult:
    """results.csv, the best trial, DSR and PBO (reused from summary.json when no trial
    changed), and the report."""
    rows = []
    keys = config.keys()
    forecast_keys = {}
    for trial in sorted(_finished(study), key=lambda t: t.number):
        attrs = {**trial.user_attrs.get("trial", {}), **trial.user_attrs.get("outcome", {}),
                 "error": trial.user_attrs.get("error")}
        if attrs.get("keys"):
            forecast_keys[trial.number] = attrs["keys"]
        row = {"trial": trial.number, "status": trial.state.name}
        row.update({k: trial.params.get(k) for k in keys})
        row.update(attrs.get("metrics") or {})
        row.update({f"holdout_{k}": v for k, v in (attrs.get("holdout") or {}).items()})
        row.update({"error": attrs.get("error"), "engine": attrs.get("engine"),
                    "seed": attrs.get("seed"), "seconds": attrs.get("seconds"),
                    "model_key": attrs.get("model_key")})
        rows.append(row)
    table = pd.DataFrame(rows)
    tmp = folder / "results.csv.tmp"
    table.to_csv(tmp, index=False)
    tmp.replace(folder / "results.csv")
    complete = table[table["status"] == "COMPLETE"] if len(table) else table
    best = dsr = pbo = None
    matrix = None
    if reuse and (folder / "summary.json").is_file():
        saved = json.loads((folder / "summary.json").read_text())
        if saved.get("n_trials") == len(table):
            return SweepResult(folder, config, table, saved["best"], saved["dsr"],
                               saved["pbo"], trainings, forecast_keys=forecast_keys)
    if len(complete):
        ranked = complete.sort_values(config.objective,
                                      ascending=config.direction == "minimize")
        top = ranked.iloc[0]
        number = int(top["trial"])
        outcome = study.get_trials(deepcopy=False)[number].user_attrs.get("outcome", {})
        best = {"trial": number, "params": {k: _clean(top[k]) for k in keys},
                "metrics": outcome.get("metrics"), "holdout": outcome.get("holdout"),
                "holdout_start": outcome.get("holdout_start")}
        returns = _Returns.load(folder, [int(n) for n in complete["trial"]])
        if number in returns:
            sharpes = [sharpe_per_bar(r.to_numpy()) for r in returns.values()]
            dsr = {k: _clean(v) for k, v in deflated_sharpe_ratio(
                returns[number].to_numpy(), np.asarray(sharpes)).items()}
        if len(returns) >= 2:
            matrix = returns_matrix(returns)
            result = probability_of_backtest_overfitting(matrix.to_numpy())
            pbo = {"pbo": _clean(result["pbo"]), "n_splits": result["n_splits"],
                   "n_trials": result["n_trials"], "n_left_out": result["n_left_out"],
                   "n_bars": matrix.shape[0]}
        if dsr is not None:
            dsr["n_left_out"] = len(returns) - int(dsr["n_trials"])
    hold = None
    if report and best is not None and runner is not None and forecast_keys.get(number):
        # the report's buy & hold, on a worker while the others recheck
        hold = runner.submit(buy_and_hold_task, config.experiment(best["params"]).to_dict(),
                             forecast_keys[number], best["holdout_start"])
    curves = _recheck(config, study, complete, runner) if len(complete) else {}
    summary = {"best": best, "dsr": dsr, "pbo": pbo, "n_trials": len(table),
               "rechecked_with_backtrader": list(curves),
               "n_failed": int((table["status"] == "FAIL").sum()) if len(table) else 0,
               "objective": config.objective, "direction": config.direction,
               "holdout": config.holdout,
               # what a rerun with nothing to do answers from (sweep.finished)
               "source": config.source, "budget": config.budget(), "track": config.track}
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    result = SweepResult(folder, config, table, best, dsr, pbo, trainings, matrix,
                         forecast_keys, curves,
                         runner.result(hold) if hold is not None else None)
    if report and best is not None:
        report(result)
    return result
