"""Sweeps: train once per model config, resume after a SIGKILL, record failures, the same
table on Ray, honest selection statistics, and a hold-out that ranking never sees."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from lstm_strategy import ConfigError, load_ohlcv
from lstm_strategy.evaluation.stats import (
    EULER_GAMMA,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probability_of_backtest_overfitting,
    sharpe_per_bar,
)
from lstm_strategy.reports.sweep import write_sweep_report
from lstm_strategy.sweep import load_sweep, sweep

from .conftest import ROOT

TINY = """\
base: default
set:
  data.paths: [{data}]
  data.start: 2008-01-01
  data.end: 2011-12-31
  model.hidden_size: 8
  model.num_layers: 1
  train.epochs: 2
  train.min_train_bars: 300
  train.step: 100
  train.context_bars: 60
  train.bptt: 32
  train.burn_in: 5
  train.batch_streams: 4
vary:
  train.seed: [0, 1]
  strategy.entry_threshold: [0.0, 0.001, 0.002]
  strategy.min_hold_bars: [0, 5]
search: grid
"""
COMPARED = ["trial", "status", "train.seed", "strategy.entry_threshold",
            "strategy.min_hold_bars", "total_return", "sharpe", "max_drawdown", "n_trades",
            "holdout_sharpe", "model_key"]


def sweep_file(folder: Path, data: Path | str = ROOT / "data" / "AAPL.csv", **extra: str
               ) -> Path:
    text = TINY.format(data=data)
    for key, value in extra.items():
        text += f"{key}: {value}\n"
    path = folder / "sweep.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> object:
    """The tiny sweep, run once on a forecast cache of its own (so its trainings count)."""
    folder = tmp_path_factory.mktemp("sweep")
    before = os.environ.get("LSTM_STRATEGY_CACHE")
    os.environ["LSTM_STRATEGY_CACHE"] = str(folder / "cache")
    try:
        yield sweep(sweep_file(folder), folder / "out", progress=False,
                    report=write_sweep_report)
    finally:
        os.environ["LSTM_STRATEGY_CACHE"] = before or ""


def test_each_model_config_is_trained_once_and_never_again(plain: object,
                                                           tmp_path: Path) -> None:
    table = plain.table
    assert len(table) == 12 and (table["status"] == "COMPLETE").all()
    assert table["model_key"].nunique() == 2  # two seeds: two model configs
    assert plain.trainings == 2  # one per model config, for 12 points
    again = sweep(plain.config, plain.folder, progress=False)  # resume a finished sweep
    assert again.trainings == 0 and len(again.table) == 12
    fresh = sweep(plain.config, tmp_path / "fresh", progress=False)  # a new folder, same inputs
    assert fresh.trainings == 0
    pd.testing.assert_frame_equal(fresh.table[COMPARED], plain.table[COMPARED])
    for name in ("results.csv", "study.db", "sweep_report.html", "summary.json"):
        assert (plain.folder / name).exists()


def test_a_sigkilled_sweep_resumes_with_every_trial_exactly_once(plain: object,
                                                                 tmp_path: Path) -> None:
    config = sweep_file(tmp_path, engine="backtrader")  # slow enough to be caught mid-way
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "lstm_strategy", "sweep", "--config",
                             str(config), "--out", str(out), "--quiet"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    done = 0
    while done < 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
        if (out / "study.db").exists():
            try:
                with sqlite3.connect(out / "study.db") as db:
                    done = db.execute("select count(*) from trials where state = 'COMPLETE'"
                                      ).fetchone()[0]
            except sqlite3.Error:
                pass
    assert proc.poll() is None, "the sweep ended before it could be killed"
    proc.send_signal(signal.SIGKILL)  # no clean-up at all
    proc.wait()
    with sqlite3.connect(out / "study.db") as db:
        finished = db.execute("select count(*) from trials where state = 'COMPLETE'").fetchone()[0]
    assert 4 <= finished < 12
    resumed = sweep(load_sweep(config), out, progress=False)
    assert sorted(resumed.table["trial"]) == list(range(12))  # each trial once
    assert (resumed.table["status"] == "COMPLETE").all()
    pd.testing.assert_frame_equal(resumed.table[COMPARED], plain.table[COMPARED])


def _session_processes(session: int) -> list[int]:
    """Processes left in a session (what a driver started and did not end)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session:  # the session id, after state, ppid and pgrp
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_the_cli_leaves_every_file_whole_and_a_finished_rerun_answers_from_the_folder(
        plain: object, tmp_path: Path) -> None:
    """The command ends without the interpreter's teardown: its files are complete, no
    worker outlives it, and its rerun (nothing left) prints the same summary from
    summary.json; an edited sweep file is not taken for the finished one."""
    config = sweep_file(tmp_path, workers="2")
    out = tmp_path / "out"
    args = [sys.executable, "-m", "lstm_strategy", "sweep", "--config", str(config), "--out",
            str(out), "--quiet"]
    env = {**os.environ, "LSTM_STRATEGY_CACHE": str(plain.folder.parent / "cache")}
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-2000:]
    assert stdout.rstrip().endswith(f"report: {out / 'sweep_report.html'}")
    assert "12 trials (0 failed), 0 model training(s)" in stdout
    time.sleep(0.2)
    assert _session_processes(proc.pid) == []  # its session: the driver and its workers
    assert len(pd.read_csv(out / "results.csv")) == 12
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_trials"] == summary["budget"] == 12 and summary["source"]
    assert (out / "sweep_report.html").read_text().rstrip().endswith("</html>")
    with sqlite3.connect(out / "study.db") as db:
        assert db.execute("select count(*) from trials where state = 'COMPLETE'"
                          ).fetchone()[0] == 12
    again = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout == stdout
    config.write_text(config.read_text().replace("[0, 5]", "[0, 5, 10]"))
    edited = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    assert edited.returncode == 2 and "holds another sweep" in edited.stderr


def test_a_sweep_on_cached_forecasts_loads_no_torch_and_reports_the_same(
        plain: object, tmp_path: Path) -> None:
    """A sweep whose models the cache holds (here in one process: driver and tasks) never
    imports torch; its table is the first sweep's, and its report (buy & hold and the
    curves computed by the sweep's workers) reads as the report computes them itself."""
    out = tmp_path / "again"
    code = ("import sys\nfrom lstm_strategy.cli import main\n"
            f"code = main(['sweep', '--config', {str(sweep_file(tmp_path))!r}, '--out', "
            f"{str(out)!r}, '--quiet'])\n"
            "print('torch loaded:', 'torch' in sys.modules)\nsys.exit(code)")
    env = {**os.environ, "LSTM_STRATEGY_CACHE": str(plain.folder.parent / "cache")}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "0 model training(s)" in done.stdout and "torch loaded: False" in done.stdout
    again = pd.read_csv(out / "results.csv")
    pd.testing.assert_frame_equal(again[COMPARED], plain.table[COMPARED].reset_index(drop=True),
                                  check_dtype=False)
    assert plain.buy_and_hold is not None and plain.curves  # the workers computed them
    alone = dataclasses.replace(plain, folder=tmp_path, curves={}, buy_and_hold=None)
    write_sweep_report(alone)

    def text(path: Path) -> str:  # what a reader sees, without Bokeh's generated ids
        page = path.read_text()
        page = re.sub(r"<script.*?</script>", "", page, flags=re.S)
        return re.sub(r'<div id="[^"]+" data-root-id="[^"]+"', "<div", page)

    assert text(tmp_path / "sweep_report.html") == text(plain.folder / "sweep_report.html")
    hold = alone.buy_and_hold  # as the report computed it, in this process
    assert (hold["in_sample"], hold["holdout"]) == (plain.buy_and_hold["in_sample"],
                                                    plain.buy_and_hold["holdout"])
    pd.testing.assert_series_equal(hold["equity"], plain.buy_and_hold["equity"])
    from lstm_strategy.sweep.tasks import backtest_task
    for trial, equity in plain.curves.items():  # backtrader's curve is the fast one, exactly
        row = plain.table.set_index("trial").loc[trial]
        tree = plain.config.experiment({k: row[k].item() if hasattr(row[k], "item")
                                        else row[k] for k in plain.config.keys()}).to_dict()
        fast = backtest_task(tree, plain.forecast_keys[trial], plain.config.holdout,
                             keep_equity=True, engine="fast")["equity"]
        pd.testing.assert_series_equal(fast, equity, check_exact=True)


def test_a_trial_that_raises_is_recorded_and_the_others_finish(tmp_path: Path) -> None:
    path = sweep_file(tmp_path)
    path.write_text(path.read_text().replace(
        "  strategy.min_hold_bars: [0, 5]\n", "  strategy.exit_threshold: [0.0, 0.0015]\n"))
    result = sweep(path, tmp_path / "out", progress=False)
    failed = result.table[result.table["status"] == "FAIL"]
    # exit above entry is refused by the rules: two seeds x entry 0 and 0.001
    assert len(failed) == 4 and len(result.table) == 12
    assert failed["error"].str.contains("exit_threshold=0.0015 must be <=").all()
    assert (result.table["status"] == "COMPLETE").sum() == 8
    assert result.best is not None


def test_local_and_ray_backends_give_the_same_table(plain: object, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    on_ray = sweep(plain.config, tmp_path / "ray", backend="ray", workers=2, progress=False)
    pd.testing.assert_frame_equal(on_ray.table[COMPARED], plain.table[COMPARED])
    two = sweep(plain.config, tmp_path / "two", workers=2, progress=False)
    pd.testing.assert_frame_equal(two.table[COMPARED], plain.table[COMPARED])


def test_the_hold_out_never_influences_the_ranking(plain: object, tmp_path: Path) -> None:
    split = pd.Timestamp(plain.best["holdout_start"])
    bars = load_ohlcv(ROOT / "data" / "AAPL.csv")
    rng = np.random.default_rng(5)
    after = bars.index >= split
    scale = np.exp(np.cumsum(rng.normal(0, 0.02, after.sum())))
    changed = bars.copy()
    for column in ("Open", "High", "Low", "Close"):
        changed.loc[after, column] *= scale
    path = tmp_path / "AAPL.csv"
    changed.to_csv(path, index_label="Date")
    other = sweep(sweep_file(tmp_path, data=path), tmp_path / "out", progress=False)
    inside = ["trial", "total_return", "sharpe", "max_drawdown", "n_trades", "exposure"]
    pd.testing.assert_frame_equal(other.table[inside], plain.table[inside])
    assert other.best["trial"] == plain.best["trial"]
    assert other.best["metrics"] == plain.best["metrics"]
    assert not np.allclose(other.table["holdout_sharpe"], plain.table["holdout_sharpe"])


def test_sweep_file_errors_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("vary:\n  strategy.entry_treshold: [0, 1]\n")
    with pytest.raises(ConfigError, match=r"unknown key strategy\.entry_treshold"):
        load_sweep(path)
    path.write_text("vary:\n  strategy.entry_threshold: [0, 1]\nsearch: tpe\n")
    with pytest.raises(ConfigError, match="needs a budget"):
        load_sweep(path)


def test_tpe_search_fills_its_budget(plain: object, tmp_path: Path) -> None:
    path = sweep_file(tmp_path)
    path.write_text(path.read_text().replace("search: grid\n", "search: tpe\ntrials: 6\n")
                    .replace("  strategy.entry_threshold: [0.0, 0.001, 0.002]\n",
                             "  strategy.entry_threshold: {low: 0.0, high: 0.002}\n"))
    result = sweep(path, tmp_path / "out", progress=False)
    assert len(result.table) == 6 and (result.table["status"] == "COMPLETE").all()
    assert result.table["strategy.entry_threshold"].between(0.0, 0.002).all()


# -- the statistics, against the papers' formulas ---------------------------------------

def test_deflated_sharpe_ratio_by_hand() -> None:
    """Bailey and Lopez de Prado (2014), eqs. 1-2, worked by hand on a fixed series."""
    rng = np.random.default_rng(11)
    returns = rng.normal(0.001, 0.01, 1000)
    sharpes = np.array([0.02, 0.05, 0.08, 0.11, sharpe_per_bar(returns)])
    normal = NormalDist()
    n, variance = len(sharpes), sharpes.var(ddof=1)
    sr0 = math.sqrt(variance) * ((1 - EULER_GAMMA) * normal.inv_cdf(1 - 1 / n)
                                 + EULER_GAMMA * normal.inv_cdf(1 - 1 / (n * math.e)))
    sr = returns.mean() / returns.std(ddof=1)
    z = (returns - returns.mean()) / returns.std()
    skew, kurt = (z ** 3).mean(), (z ** 4).mean()
    expected = normal.cdf((sr - sr0) * math.sqrt(len(returns) - 1)
                          / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr ** 2))
    got = deflated_sharpe_ratio(returns, sharpes)
    assert got["expected_max_sharpe_per_bar"] == pytest.approx(sr0, rel=1e-12)
    assert got["dsr"] == pytest.approx(expected, rel=1e-12)
    # a hand-checked number: 100 trials of unit Sharpe variance expect a best of ~2.5
    assert expected_max_sharpe(100, 1.0) == pytest.approx(2.5306, abs=1e-4)


def test_more_trials_deflate_more() -> None:
    rng = np.random.default_rng(3)
    best = rng.normal(0.0008, 0.01, 1500)
    others = rng.normal(0.0, 0.03, 1000)
    dsr = [deflated_sharpe_ratio(best, others[:n])["dsr"] for n in (10, 100, 1000)]
    assert dsr[0] > dsr[1] > dsr[2]


def test_pbo_is_near_a_half_for_noise_and_near_zero_for_a_dominant_strategy() -> None:
    noise = [probability_of_backtest_overfitting(
        np.random.default_rng(seed).normal(0, 0.01, (1000, 20)), n_blocks=10)["pbo"]
        for seed in range(16)]
    assert abs(np.mean(noise) - 0.5) < 0.1
    rng = np.random.default_rng(0)
    matrix = rng.normal(0, 0.01, (1000, 20))
    matrix[:, 4] += 0.004  # one strategy truly dominates
    assert probability_of_backtest_overfitting(matrix, n_blocks=10)["pbo"] < 0.05


def _pbo_by_the_book(matrix: np.ndarray, n_blocks: int) -> float:
    """CSCV written out split by split (Bailey et al. 2017), the reference for the fast one."""
    blocks = np.array_split(matrix, n_blocks)
    below = 0
    splits = list(itertools.combinations(range(n_blocks), n_blocks // 2))
    for chosen in splits:
        inside = np.vstack([blocks[b] for b in chosen])
        outside = np.vstack([blocks[b] for b in range(n_blocks) if b not in chosen])
        in_sharpe = inside.mean(0) / inside.std(0, ddof=1)
        out_sharpe = outside.mean(0) / outside.std(0, ddof=1)
        best = int(np.argmax(in_sharpe))
        rank = (np.sum(out_sharpe < out_sharpe[best])
                + 0.5 * (np.sum(out_sharpe == out_sharpe[best]) - 1) + 1) / (matrix.shape[1] + 1)
        below += math.log(rank / (1 - rank)) <= 0
    return below / len(splits)


def test_pbo_counts_every_trial_even_when_many_share_their_returns() -> None:
    # sweeps hold many points that trade alike: repeated columns must weigh as many trials
    rng = np.random.default_rng(5)
    distinct = rng.normal(0.0002, 0.01, (400, 6))
    matrix = distinct[:, [0, 1, 1, 2, 3, 3, 3, 4, 5, 0, 2]]
    assert probability_of_backtest_overfitting(matrix, n_blocks=8)["pbo"] == pytest.approx(
        _pbo_by_the_book(matrix, 8), abs=1e-12)
    assert probability_of_backtest_overfitting(distinct, n_blocks=8)["pbo"] == pytest.approx(
        _pbo_by_the_book(distinct, 8), abs=1e-12)


def test_engines_serve_points_and_the_top_is_rechecked_with_backtrader(
        plain: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(plain.table["engine"]) == {"fast"}  # auto: every point here is supported
    assert len(plain.table) and (plain.folder / "summary.json").exists()
    slow = sweep(load_sweep(sweep_file(tmp_path), engine="backtrader"), tmp_path / "slow",
                 progress=False)
    assert set(slow.table["engine"]) == {"backtrader"}
    metrics = ["sharpe", "total_return", "max_drawdown", "n_trades", "win_rate",
               "holdout_sharpe", "holdout_total_return"]
    np.testing.assert_allclose(slow.table[metrics].to_numpy(float),
                               plain.table[metrics].to_numpy(float), rtol=1e-9)
    # a stream-mode point says what ran: the batch forecasts of the same walk-forward
    streaming = dataclasses.replace(plain.config,
                                    set={**plain.config.set, "strategy.mode": "stream"},
                                    vary={"strategy.entry_threshold": [0.0, 0.001]})
    stream = sweep(streaming, tmp_path / "stream", progress=False)
    assert set(stream.table["engine"]) == {
        "fast on batch forecasts (stream mode's forecasts, computed in one pass)"}
    # fault injection: a wrong fast result must stop the sweep at the re-check
    from lstm_strategy.backtest import fastsim
    from lstm_strategy.sweep import runner

    honest = fastsim.FastEvaluator.run_many

    def wrong(self: object, points: list, **kwargs: object) -> list:
        scored = honest(self, points, **kwargs)
        for point in scored:  # as if the kernel's final value were off by 1 bp
            point["metrics"] = {**point["metrics"],
                                "final_value": point["metrics"]["final_value"] * 1.0001}
        return scored

    monkeypatch.setattr(fastsim.FastEvaluator, "run_many", wrong)
    with pytest.raises(runner.EngineMismatch, match=r"trial \d+ .* backtrader"):
        sweep(plain.config, tmp_path / "wrong", progress=False)


def test_the_batched_ledger_reads_back_like_optunas_own_calls(tmp_path: Path) -> None:
    # the sweep writes its Optuna ledger in bulk; Optuna must see exactly what its public
    # calls (the fallback) would have written
    import optuna

    from lstm_strategy.sweep.ledger import Ledger

    distributions = {"a": optuna.distributions.FloatDistribution(0.0, 1.0),
                     "b": optuna.distributions.CategoricalDistribution([True, False])}
    points = [(i, {"a": i / 10, "b": i % 2 == 0}) for i in range(6)]
    seen = []
    for bulk in (True, False):
        storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / f'{bulk}.db'}")
        study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
        study_id = storage.get_study_id_from_name("s")
        ledger = Ledger(storage, study_id, every=3600, batch=10_000)
        if not bulk:
            ledger.models = None
        ids = ledger.create(points, distributions)
        assert [number for _, number in ids] == list(range(6))
        for trial_id, number in ids[:4]:
            complete = number != 2
            ledger.finish(trial_id, optuna.trial.TrialState.COMPLETE if complete
                          else optuna.trial.TrialState.FAIL, number * 0.5 if complete else None,
                          {"outcome": {"n": number}, "point": number})
        assert all(t.state.name == "RUNNING" for t in study.get_trials())  # not yet flushed
        ledger.flush()
        seen.append([(t.number, t.state.name, t.value, t.params, t.user_attrs,
                      t.datetime_complete is not None) for t in study.get_trials()])
    assert seen[0] == seen[1]
    assert [row[1] for row in seen[0]] == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE",
                                           "RUNNING", "RUNNING"]
    assert seen[0][3][2] == 1.5 and seen[0][3][4] == {"outcome": {"n": 3}, "point": 3}


def test_trials_that_never_trade_are_left_out_of_pbo_and_dsr_alike() -> None:
    rng = np.random.default_rng(11)
    noise = rng.normal(0, 0.01, (1000, 20))
    with_flat = np.hstack([np.zeros((1000, 10)), noise])
    alone = probability_of_backtest_overfitting(noise, n_blocks=10)
    mixed = probability_of_backtest_overfitting(with_flat, n_blocks=10)
    assert mixed["pbo"] == alone["pbo"]  # not 0.75: the flat trials do not count
    assert mixed["n_left_out"] == 10 and mixed["n_trials"] == 20
    assert 0.3 < alone["pbo"] < 0.7  # pure noise stays near one half
    sharpes = np.array([sharpe_per_bar(c) for c in with_flat.T])
    best = int(np.nanargmax(sharpes))
    dsr_mixed = deflated_sharpe_ratio(with_flat[:, best], sharpes)
    dsr_alone = deflated_sharpe_ratio(noise[:, best - 10], sharpes[10:])
    assert dsr_mixed["n_trials"] == 20 and dsr_mixed["dsr"] == dsr_alone["dsr"]
    # a trial that sits out one half counts there as cash (Sharpe 0), not as missing
    part = noise.copy()
    part[:500, 3] = 0.0
    assert probability_of_backtest_overfitting(part, n_blocks=2)["n_left_out"] == 0


@pytest.mark.parametrize("dsr,pbo,reading", [
    (0.99, 0.20, "Skill, as far as these figures can say"),
    (0.40, 0.70, "Luck and overfitting"),
    (1.00, 0.85, "An edge, but not the ranking's"),
])
def test_the_report_reads_dsr_and_pbo_together(dsr: float, pbo: float, reading: str) -> None:
    from lstm_strategy.reports.sweep import luck_sentence

    sentence = luck_sentence(dsr, pbo, 50)
    assert sentence.startswith(reading)
    assert f"DSR {dsr:.2f}" in sentence and f"PBO {pbo:.2f}" in sentence and "50 trials" in sentence
    assert luck_sentence(None, pbo, 50).startswith("Not enough trials")


def test_a_fresh_machine_compiles_the_loops_beside_training_and_leaves_no_process(
        plain: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With Numba's cache cold, the loops compile in a child process while the model
    trains; the driver waits for it only before the first point, the results are those of
    a warm machine, and the child is gone when the sweep ends. (A cold cache is simulated:
    the child then loads the loops from the cache instead of compiling them, which keeps
    this test from paying the 13 s compile; bench_first_sweep.py measures the real one.)"""
    from lstm_strategy.backtest import fastsim
    from lstm_strategy.sweep import runner

    started = []
    spawn = runner._compile_in_background

    def recorded() -> object:
        started.append(spawn())
        return started[-1]

    monkeypatch.setattr(fastsim, "kernel_cached", lambda: False)
    monkeypatch.setattr(runner, "_compile_in_background", recorded)
    before = os.environ.get("LSTM_STRATEGY_CACHE")
    os.environ["LSTM_STRATEGY_CACHE"] = str(tmp_path / "cache")  # it trains again
    try:
        fresh = sweep(plain.config, tmp_path / "out", progress=False)
    finally:
        os.environ["LSTM_STRATEGY_CACHE"] = before or ""
    assert fresh.trainings == 2 and len(started) == 1
    assert not started[0].is_alive() and started[0].exitcode == 0
    table = plain.table.sort_values("trial")
    for column in ("sharpe", "total_return", "n_trades", "holdout_sharpe"):
        np.testing.assert_array_equal(fresh.table.sort_values("trial")[column].to_numpy(float),
                                      table[column].to_numpy(float))


def test_the_sweep_report_is_interactive_or_static_as_the_config_says(plain: object,
                                                                       tmp_path: Path) -> None:
    """Interactive by default (the heatmap and every trial drawn by Bokeh, inlined); with
    `report.static: true` in the sweep's `set`, PNGs and no Bokeh."""
    page = (plain.folder / "sweep_report.html").read_text()
    assert "Bokeh.embed" in page and '<img alt="chart"' not in page
    assert "Every trial" in page and "mean over the other keys" in page
    static = dataclasses.replace(plain.config, set={**plain.config.set, "report.static": True})
    folder = tmp_path / "static"
    folder.mkdir()
    write_sweep_report(dataclasses.replace(plain, config=static, folder=folder))
    page = (folder / "sweep_report.html").read_text()
    assert page.count('<img alt="chart" src="data:image/png;base64,') == 2
    assert "Bokeh.embed" not in page
