"""Experiment tracking: runs, sweeps (a parent run, a child per trial) and comparisons
logged to MLflow, with the resolved config as params, the metrics, the report and run
folder as artifacts, and tags for the package version and the data files' hashes.

MLflow is an optional extra (`pip install 'lstm-strategy[track]'`: mlflow-skinny and the
SQLite store's alembic); the default store is `sqlite:///mlruns.db` in the current
folder, with artifacts under ./mlruns (MLflow 3 refuses its plain-file store), and any
tracking URI works (`track.uri`, `--track-uri`). It sits above the run, sweep and
comparison code and imports MLflow only when tracking is asked for.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from pathlib import Path

from . import __version__
from .config import ExperimentConfig, TrackConfig, resolve_path
from .errors import ConfigError

DEFAULT_URI = "sqlite:///mlruns.db"
PARAM_LIMIT = 6000  # MLflow's longest param value


def _mlflow() -> object:
    try:
        import mlflow
    except ImportError:
        raise ConfigError("tracking to MLflow needs it installed: pip install "
                          "'lstm-strategy[track]' (mlflow-skinny and alembic).") from None
    return mlflow


def flatten(tree: Mapping, prefix: str = "") -> dict[str, str]:
    """A nested config as dotted keys (`train.epochs`), values as text (lists as YAML-ish)."""
    out: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            text = str(value)
            out[name] = text if len(text) <= PARAM_LIMIT else text[:PARAM_LIMIT - 3] + "..."
    return out


def _numbers(values: Mapping[str, object], prefix: str = "") -> dict[str, float]:
    """The finite numbers of a (nested) metrics mapping, as dotted MLflow metric keys."""
    out: dict[str, float] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_numbers(value, f"{name}."))
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int | float) and math.isfinite(float(value)):
            out[name] = float(value)
    return out


def _data_tags(config: ExperimentConfig) -> dict[str, str]:
    tags = {"lstm_strategy.version": __version__, "lstm_strategy.config": config.name}
    data = config.data
    files = {**{f"data.{t}": p for t, p in data.sources().items()},
             "data.macro": data.macro, "data.sentiment": data.sentiment,
             "data.sectors": data.sectors}
    for key, path in files.items():
        if path and resolve_path(path).is_file():
            digest = hashlib.sha256(resolve_path(path).read_bytes()).hexdigest()[:16]
            tags[f"lstm_strategy.{key}.sha256"] = digest
    return tags


class Tracker:
    """One MLflow store and experiment; `check()` before the work, `log_*` after it."""

    def __init__(self, track: TrackConfig, default_experiment: str) -> None:
        self.uri = track.uri or DEFAULT_URI
        self.experiment = track.experiment or default_experiment
        self._mlflow = _mlflow()

    def check(self) -> str:
        """Open the store and the experiment now, so a bad URI fails before any training."""
        mlflow = self._mlflow
        mlflow.set_tracking_uri(self.uri)
        try:
            found = mlflow.set_experiment(self.experiment)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"track.uri={self.uri!r}: MLflow cannot open it ({first}). Give a "
                              f"tracking URI such as sqlite:///mlruns.db or "
                              f"http://host:5000.") from None
        return found.experiment_id

    def _client(self) -> object:
        self._mlflow.set_tracking_uri(self.uri)
        return self._mlflow.tracking.MlflowClient(self.uri)

    def _batch(self, client: object, run_id: str, params: Mapping[str, str] = (),
               metrics: Mapping[str, float] = (), tags: Mapping[str, str] = ()) -> None:
        from mlflow.entities import Metric, Param, RunTag

        params, metrics, tags = dict(params), dict(metrics), dict(tags)
        keys = list(params)
        for start in range(0, max(len(keys), 1), 100):  # MLflow takes 100 params a batch
            chunk = keys[start:start + 100]
            client.log_batch(run_id, params=[Param(k, params[k]) for k in chunk],
                             metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()]
                             if start == 0 else [],
                             tags=[RunTag(k, v) for k, v in tags.items()] if start == 0 else [])

    def log_run(self, config: ExperimentConfig, metrics: Mapping, folder: Path) -> str:
        """A run: params, strategy/baseline/forecast metrics, the run folder as artifacts."""
        client = self._client()
        experiment = self.check()
        run = client.create_run(experiment, run_name=folder.name, tags=_data_tags(config))
        numbers = {**_numbers(metrics.get("strategy", {}), "lstm."),
                   **_numbers(metrics.get("baselines", {})),
                   **_numbers(metrics.get("forecast", {}), "forecast.")}
        self._batch(client, run.info.run_id, flatten(config.to_dict()), numbers,
                    {"lstm_strategy.kind": "run"})
        client.log_artifacts(run.info.run_id, str(folder))
        client.set_terminated(run.info.run_id)
        return run.info.run_id

    def log_sweep(self, config: ExperimentConfig, result: object, folder: Path) -> str:
        """A sweep: a parent run (best trial, DSR, PBO, the report), a child per trial."""
        client = self._client()
        experiment = self.check()
        parent = client.create_run(experiment, run_name=folder.name, tags={
            **_data_tags(config), "lstm_strategy.kind": "sweep"})
        pid = parent.info.run_id
        summary = {"n_trials": float(len(result.table))}
        for name, values in (("dsr", result.dsr or {}), ("pbo", result.pbo or {})):
            summary.update(_numbers(values, f"{name}."))
        if result.best:
            summary.update(_numbers(result.best.get("metrics") or {}, "best."))
            summary.update(_numbers(result.best.get("holdout") or {}, "best.holdout."))
        self._batch(client, pid, {**flatten(config.to_dict()),
                                  "sweep.search": result.config.search,
                                  "sweep.objective": result.config.objective}, summary)
        keys = result.config.keys()
        for row in result.table.to_dict("records"):
            child = client.create_run(experiment, run_name=f"trial {row['trial']}", tags={
                "mlflow.parentRunId": pid, "lstm_strategy.kind": "trial",
                "status": str(row.get("status"))})
            params = {k: str(row.get(k)) for k in keys}
            values = {k: v for k, v in row.items() if k not in keys and k != "trial"}
            self._batch(client, child.info.run_id, params, _numbers(values))
            client.set_terminated(child.info.run_id,
                                  "FINISHED" if row.get("status") == "COMPLETE" else "FAILED")
        for name in ("results.csv", "summary.json", "sweep_report.html"):
            if (folder / name).is_file():
                client.log_artifact(pid, str(folder / name))
        client.set_terminated(pid)
        return pid

    def log_comparison(self, config: ExperimentConfig, table: object, folder: Path) -> str:
        """A comparison: one metric per model and column (`LSTM-GNN.ic`), the folder."""
        client = self._client()
        experiment = self.check()
        run = client.create_run(experiment, run_name=folder.name, tags={
            **_data_tags(config), "lstm_strategy.kind": "compare"})
        numbers: dict[str, float] = {}
        rows = table if "model" in table.columns else table.reset_index()
        for row in rows.to_dict("records"):
            name = re.sub(r"[^\w\-./ :]", "", str(row.pop("model"))).replace(" ", "_")
            row.pop("macro", None)
            numbers.update(_numbers(row, f"{name}."))
        self._batch(client, run.info.run_id, flatten(config.to_dict()), numbers)
        client.log_artifacts(run.info.run_id, str(folder))
        client.set_terminated(run.info.run_id)
        return run.info.run_id


def tracker_for(config: ExperimentConfig, override: str | None = None,
                uri: str | None = None) -> Tracker | None:
    """The tracker a command should use (CLI `--track` and `--track-uri` over the config's
    track section), checked now; None when nothing is tracked."""
    backend = override or config.track.backend
    if backend == "none":
        return None
    track = TrackConfig(backend=backend, uri=uri or config.track.uri,
                        experiment=config.track.experiment)
    tracker = Tracker(track, config.name)
    tracker.check()
    return tracker

