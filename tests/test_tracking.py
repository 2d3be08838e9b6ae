"""MLflow tracking: a run, a 4-point sweep and a missing extra, against a real MLflow store
(SQLite in a temporary folder) read back through MLflow's own client."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lstm_strategy.cli import main

from .conftest import ROOT, tiny_overrides
from .test_sweep import sweep_file

mlflow = pytest.importorskip("mlflow")


def _client(uri: str) -> object:
    return mlflow.tracking.MlflowClient(uri)


def test_a_run_is_logged_with_params_metrics_artifacts_and_tags(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)  # the default store and artifacts land here
    out = tmp_path / "run"
    args = ["run", "--quiet", "--out", str(out), "--track", "mlflow",
            "--data", str(ROOT / "data" / "AAPL.csv"),
            *(part for o in tiny_overrides() for part in ("--set", o))]
    assert main(args) == 0
    assert "tracked: MLflow run" in capsys.readouterr().out
    client = _client("sqlite:///mlruns.db")
    experiment = client.get_experiment_by_name("default")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.params["train.epochs"] == "2"
    assert run.data.params["model.params.hidden_size"] == "8"
    assert run.data.params["data.start"] == "2008-01-01"
    metrics = run.data.metrics
    assert {"lstm.sharpe", "lstm.total_return", "buy_and_hold.sharpe",
            "forecast.model.ic"} <= set(metrics)
    import json

    saved = json.loads((out / "metrics.json").read_text())
    assert metrics["lstm.sharpe"] == pytest.approx(saved["strategy"]["sharpe"])
    assert run.data.tags["lstm_strategy.version"]
    assert len(run.data.tags["lstm_strategy.data.AAPL.sha256"]) == 16
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"report.html", "metrics.json", "trades.csv", "config.yaml"} <= artifacts


def test_a_sweep_is_a_parent_run_with_a_child_per_trial(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    path = sweep_file(tmp_path)
    path.write_text(path.read_text().replace("  train.seed: [0, 1]\n", "").replace(
        "  strategy.entry_threshold: [0.0, 0.001, 0.002]\n",
        "  strategy.entry_threshold: [0.0, 0.001]\n"))
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    out = tmp_path / "sweep"
    assert main(["sweep", "--config", str(path), "--out", str(out), "--quiet", "--track",
                 "mlflow", "--track-uri", uri]) == 0
    client = _client(uri)
    runs = client.search_runs([client.get_experiment_by_name("default").experiment_id])
    parents = [r for r in runs if r.data.tags.get("lstm_strategy.kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("lstm_strategy.kind") == "trial"]
    assert len(parents) == 1 and len(children) == 4
    pid = parents[0].info.run_id
    assert all(c.data.tags["mlflow.parentRunId"] == pid for c in children)
    assert {c.data.params["strategy.entry_threshold"] for c in children} == {"0.0", "0.001"}
    assert all("sharpe" in c.data.metrics for c in children)
    assert "dsr.dsr" in parents[0].data.metrics or "pbo.pbo" in parents[0].data.metrics
    artifacts = {a.path for a in client.list_artifacts(pid)}
    assert {"results.csv", "sweep_report.html"} <= artifacts


def test_without_mlflow_the_extra_is_named_and_nothing_is_trained(tmp_path: Path) -> None:
    out = tmp_path / "run"
    code = ("import sys; sys.modules['mlflow'] = None; from lstm_strategy.cli import main; "
            f"sys.exit(main(['run', '--track', 'mlflow', '--out', {str(out)!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode == 2, done.stderr
    assert "pip install 'lstm-strategy[track]'" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()


def test_a_bad_tracking_uri_fails_before_training(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert main(["run", "--quiet", "--out", str(out), "--track", "mlflow", "--track-uri",
                 "nosuchscheme://x", *(part for o in tiny_overrides()
                                       for part in ("--set", o))]) == 2
    err = capsys.readouterr().err
    assert "track.uri='nosuchscheme://x'" in err and not out.exists()
