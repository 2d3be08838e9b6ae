"""End to end: the CLI's run folder, no lookahead through the whole stack, configs, bad input."""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lstm_strategy import ConfigError, ExperimentConfig, load_config, load_ohlcv, run_experiment
from lstm_strategy.cli import main
from lstm_strategy.config import CONFIG_DIR

from .conftest import ROOT, hourly_bars, tiny_overrides

CONTRACT_FILES = {"metrics.json", "equity.csv", "trades.csv", "predictions.csv", "config.yaml",
                  "report.html", "orders.csv", "folds.csv"}
STRATEGY_KEYS = {"total_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown",
                 "calmar", "n_trades", "win_rate", "exposure", "turnover"}
FORECAST_KEYS = {"rmse", "mae", "directional_accuracy", "ic"}


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("runs") / "tiny"
    args = ["run", "--out", str(out), "--quiet", "--device", "cpu"]
    for item in tiny_overrides():
        args += ["--set", item]
    assert main(args) == 0
    return out, ""


def test_cli_run_writes_every_file_of_the_contract(cli_run: tuple[Path, str]) -> None:
    out, _ = cli_run
    assert CONTRACT_FILES <= {p.name for p in out.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text())
    assert STRATEGY_KEYS <= set(metrics["strategy"])
    assert set(metrics["baselines"]) == {"buy_and_hold", "sma_cross", "naive_forecast"}
    for baseline in metrics["baselines"].values():
        assert STRATEGY_KEYS <= set(baseline)
    for name in ("model", "naive_zero", "naive_last", "naive_drift"):
        assert FORECAST_KEYS <= set(metrics["forecast"][name])
    predictions = pd.read_csv(out / "predictions.csv", parse_dates=["date"])
    assert list(predictions.columns) == ["date", "ticker", "prediction", "target"]
    assert predictions["prediction"].notna().all()
    equity = pd.read_csv(out / "equity.csv", index_col="date", parse_dates=True)
    assert list(equity.columns) == ["lstm", "buy_and_hold", "sma_cross", "naive_forecast"]
    assert load_config(out / "config.yaml").train.epochs == 2  # the resolved config reloads
    html = (out / "report.html").read_text()
    assert html.count('<div class="chart">') >= 6 and "buy_and_hold" in html
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp left


def test_cli_metrics_agree_with_backtrader_analyzers(cli_run: tuple[Path, str]) -> None:
    out, _ = cli_run
    metrics = json.loads((out / "metrics.json").read_text())
    ours, theirs = metrics["strategy"], metrics["backtrader_analyzers"]
    # the analyzers see the whole feed; before trade_start nothing is held, so these agree
    assert ours["total_return"] == pytest.approx(theirs["total_return"], rel=1e-9)
    assert ours["max_drawdown"] == pytest.approx(theirs["max_drawdown"], rel=1e-9)
    assert ours["n_trades"] == theirs["n_trades"]
    trades = pd.read_csv(out / "trades.csv")
    closed = trades[trades["status"] == "closed"]
    assert len(closed) == theirs["n_closed_trades"]
    assert ours["n_open_trades"] == (trades["status"] == "open").sum()
    if len(closed):
        assert (closed["pnl_net"] > 0).mean() == pytest.approx(theirs["win_rate_closed"])
    equity = pd.read_csv(out / "equity.csv", index_col="date", parse_dates=True)["lstm"]
    assert ours["total_return"] == pytest.approx(equity.iloc[-1] / equity.iloc[0] - 1)


def tiny_config(**extra: str) -> ExperimentConfig:
    return load_config(None, tiny_overrides(**extra), device="cpu")


LONG_SHORT = {"strategy.allow_short": "true", "strategy.sizing": "vol_target",
              "strategy.zscore_window": "20", "strategy.entry_threshold": "0.5",
              "strategy.stop_loss": "0.05", "strategy.fraction": "0.5",
              "strategy.min_hold_bars": "2"}


@pytest.fixture(scope="module")
def hourly_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Round-the-clock hourly bars (FX-like), May to July 2008, joined with the daily macro."""
    path = tmp_path_factory.mktemp("hourly") / "FXH.csv"
    hourly_bars(pd.bdate_range("2008-05-01", "2008-07-31")).to_csv(path, index_label="Date")
    return path


@pytest.mark.parametrize("strategy,spacing", [({}, "daily"), (LONG_SHORT, "daily"),
                                              ({}, "hourly")],
                         ids=["long_only", "long_short_vol", "hourly"])
def test_no_lookahead_end_to_end(strategy: dict, spacing: str, request: pytest.FixtureRequest
                                 ) -> None:
    cut = pd.Timestamp("2011-03-15")
    if spacing == "hourly":
        strategy = {"data.paths": f"[{request.getfixturevalue('hourly_csv')}]"}
        cut = pd.Timestamp("2008-07-14 13:00")
    full = run_experiment(tiny_config(**strategy), progress=False)
    short = run_experiment(tiny_config(**strategy, **{"data.end": str(cut)}), progress=False)
    assert len(full.backtests["lstm"].fills) > 10
    assert short.trade_start == full.trade_start
    p_full = full.predictions.set_index("date").loc[:cut, "prediction"]
    p_short = short.predictions.set_index("date")["prediction"]
    np.testing.assert_array_equal(p_short.to_numpy(), p_full.to_numpy())
    for name in full.backtests:
        a, b = full.backtests[name], short.backtests[name]
        fills_full = a.fills[a.fills["date"] <= cut].reset_index(drop=True)
        pd.testing.assert_frame_equal(b.fills, fills_full, obj=f"{name} fills")
        pd.testing.assert_series_equal(b.equity["value"], a.equity["value"].loc[:cut],
                                       check_exact=True, obj=f"{name} equity")
    rec_full = full.backtests["lstm"].records
    rec_short = short.backtests["lstm"].records
    pd.testing.assert_frame_equal(rec_short, rec_full[rec_full["date"] <= cut].reset_index(
        drop=True), obj="per-bar targets")


def test_same_config_same_numbers_on_cpu(cli_run: tuple[Path, str], tmp_path: Path) -> None:
    out, _ = cli_run
    args = ["run", "--out", str(tmp_path / "again"), "--quiet", "--device", "cpu"]
    for item in tiny_overrides():
        args += ["--set", item]
    assert main(args) == 0
    for name in ("equity.csv", "predictions.csv", "trades.csv"):
        assert (tmp_path / "again" / name).read_text() == (out / name).read_text()


def test_readme_python_example_runs_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Python API", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    strat, cerebro = namespace["strat"], namespace["cerebro"]
    assert len(strat.fills) > 0 and cerebro.broker.getvalue() > 0
    assert strat.nan_forecasts == 0  # trades only from the first forecast on
    assert strat.analyzers.sharperatio.get_analysis()["sharperatio"] is not None


def test_default_yaml_is_the_default_experiment() -> None:
    assert load_config(CONFIG_DIR / "default.yaml") == ExperimentConfig()


@pytest.mark.parametrize("name", ["lstm_long_short", "window_lstm", "direction_multi"])
def test_ready_configs_load(name: str) -> None:
    config = load_config(CONFIG_DIR / f"{name}.yaml")
    assert config.name == name


def test_ready_long_short_config_runs(tmp_path: Path) -> None:
    overrides = [o for o in tiny_overrides() if not o.startswith("data.")]
    config = load_config(CONFIG_DIR / "lstm_long_short.yaml",
                         [*overrides, "data.start=2008-01-01", "data.end=2011-12-31"],
                         device="cpu")
    result = run_experiment(config, progress=False)
    trades = result.backtests["lstm"].trades
    assert {"long", "short"} <= set(trades["direction"])


@pytest.mark.parametrize("text,message", [
    ("strategy:\n  sizzing: fixed\n", "unknown key strategy.sizzing"),
    ("trian:\n  epochs: 3\n", "unknown key trian; allowed keys at the top level"),
    ("strategy:\n  sizing: huge\n", "strategy.sizing='huge' is not allowed"),
    ("train:\n  epochs: many\n", "train.epochs='many' must be a whole number"),
    ("model:\n  kind: transformer\n", "model.kind='transformer'"),
    ("data:\n  macro_lag: [1]\n", "data.macro_lag=[1] must be str or int"),
    ("data:\n  macro_lag: 1\n", "data.macro_lag=1: publication lag 1: give a calendar offset"),
    ("features:\n  names: [rsi, foo]\n", "unknown feature(s) ['foo']"),
    ("data:\n  start: '2008-13-45'\n", "data.start='2008-13-45' is not a date"),
    ("data:\n  start: 2008-02-31\n", "not valid YAML (line 2: 2008-02-31 is not a date"),
    ("model:\n  kind: [\n", "not valid YAML (line 3, column 1"),
    ("strategy:\n  sizzing: fixed\nbroker:\n  fill: tomorrow\ntrain:\n  epochs: many\n",
     "3 problems: (1) train.epochs='many' must be a whole number. (2) unknown key "
     "strategy.sizzing;"),
    ("- a\n- b\n", "the top level must be a mapping"),
    ("a: [\n", "not valid YAML (line 2, column 1"),
])
def test_config_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value) and str(path) in str(info.value)


def run_cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    code = main(["run", "--quiet", *args])
    return code, capsys.readouterr().err


def test_cli_wrong_path(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    code, err = run_cli(capsys, "--data", str(tmp_path / "missing.csv"), "--out",
                        str(tmp_path / "r"))
    assert code == 2 and "missing.csv: no such file" in err and "Traceback" not in err
    assert err.count("\n") == 1 and not (tmp_path / "r").exists()


def test_cli_corrupt_csv(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    path = tmp_path / "BAD.csv"
    path.write_text("Date,Open,High,Low,Close,Volume\n2020-01-02,1,2,0.5,1.5,10\n"
                    "2020-01-03,1,2,0.5,oops,10\n")
    code, err = run_cli(capsys, "--data", str(path), "--out", str(tmp_path / "r"))
    assert code == 2 and "BAD.csv" in err and "column 'Close'" in err and "line 3" in err


def test_cli_bad_config_key(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    code, err = run_cli(capsys, "--set", "strategy.treshold=0.1", "--out", str(tmp_path / "r"))
    assert code == 2 and "unknown key strategy.treshold" in err and "entry_threshold" in err


def test_cli_too_little_data(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    code, err = run_cli(capsys, "--set", "data.start=2012-06-01", "--out", str(tmp_path / "r"))
    assert code == 2 and "AAPL.csv" in err and "min_train_bars" in err


def test_cli_never_half_overwrites_a_run_folder(capsys: pytest.CaptureFixture,
                                                tmp_path: Path) -> None:
    out = tmp_path / "existing"
    out.mkdir()
    (out / "metrics.json").write_text("{}")
    code, err = run_cli(capsys, "--out", str(out))
    assert code == 2 and "already holds files" in err and "--overwrite" in err
    # with --overwrite, a run that fails on bad input leaves the old folder as it was
    code, err = run_cli(capsys, "--out", str(out), "--overwrite", "--set", "data.paths=[nope.csv]")
    assert code == 2 and (out / "metrics.json").read_text() == "{}"
    assert sorted(os.listdir(tmp_path)) == ["existing"]


def test_failed_write_leaves_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import lstm_strategy.reports.run as report

    result = run_experiment(tiny_config(**{"report.charts": "false"}), progress=False)

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(report, "render_html", broken)
    with pytest.raises(OSError, match="disk full"):
        report.write_run(result, tmp_path / "run")
    assert os.listdir(tmp_path) == []
    monkeypatch.undo()
    report.write_run(result, tmp_path / "run")
    assert (tmp_path / "run" / "report.html").exists()


def test_cli_help_and_check(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--config", "--data", "--out", "--device", "--seed", "--set", "--overwrite"):
        assert option in text
    assert main(["check", "--set", "data.start=2008-01-01"]) == 0
    assert "walk-forward folds" in capsys.readouterr().out


def test_stream_mode_config_matches_batch() -> None:
    batch = run_experiment(tiny_config(), progress=False)
    stream = run_experiment(replace(tiny_config(**{"strategy.mode": "stream"})), progress=False)
    pd.testing.assert_frame_equal(batch.backtests["lstm"].fills, stream.backtests["lstm"].fills)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cli_missing_gpu_is_bad_input(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    code, err = run_cli(capsys, "--device", "cuda", "--out", str(tmp_path / "r"))
    assert code == 2 and "no CUDA GPU" in err and not (tmp_path / "r").exists()


@pytest.fixture(scope="module")
def holed_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """AAPL 2008-2011 with six months cut out (2009-06 to 2009-11)."""
    from lstm_strategy import load_ohlcv
    bars = load_ohlcv(ROOT / "data" / "AAPL.csv").loc["2008-01-01":"2011-12-31"]
    holed = bars.drop(bars.loc["2009-06-01":"2009-11-30"].index)
    path = tmp_path_factory.mktemp("gap") / "HOLE.csv"
    holed.to_csv(path)
    return path


def test_a_six_month_hole_is_reported_and_kept_out_of_labels_and_metrics(
        holed_csv: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["check", "--data", str(holed_csv)]) == 0
    out = capsys.readouterr().out
    assert "gap in the data from 2009-05-29 00:00:00 to 2009-12-01 00:00:00" in out
    config = load_config(None, tiny_overrides(), device="cpu", **{"data.paths": [str(holed_csv)]})
    result = run_experiment(config, progress=False)
    assert any("gap in the data" in note for note in result.notes)
    predictions = result.predictions.set_index("date")
    assert np.isnan(predictions.loc["2009-05-29", "target"])  # the label across the hole
    scored = predictions.dropna()
    assert result.forecast_metrics["model"]["n"] == len(scored)
    assert pd.Timestamp("2009-05-29") not in scored.index
    for backtest in result.backtests.values():
        returns = backtest.equity["value"].pct_change().dropna()
        assert pd.Timestamp("2009-12-01") in returns.index
        kept = returns.drop(pd.Timestamp("2009-12-01"))
        expected = kept.mean() / kept.std(ddof=1) * np.sqrt(252)
        if backtest.metrics["sharpe"] is not None:
            assert backtest.metrics["sharpe"] == pytest.approx(expected, rel=1e-9)
    code, err = run_cli(capsys, "--data", str(holed_csv), "--set", "data.gaps=refuse",
                        "--out", str(holed_csv.parent / "refused"))
    assert code == 2 and "HOLE.csv: gap in the data from 2009-05-29" in err
    assert "data.gaps: exclude" in err and not (holed_csv.parent / "refused").exists()


def test_a_run_uses_the_configured_threads_and_restores_them() -> None:
    seen: list[int] = []
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run_experiment(tiny_config(**{"threads": "1"}), progress=False,
                       log=lambda message: seen.append(torch.get_num_threads()))
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert load_config(None, ["threads=0"]).threads == 0
    with pytest.raises(ConfigError, match="threads=-1"):
        load_config(None, ["threads=-1"])


def _threads_in_a_worker(seed: int) -> int:
    """Runs in a pool worker: a streaming backtest, reporting torch's threads while stepping."""
    from lstm_strategy import LSTMStrategy, backtest, build_features, load_ohlcv, make_target
    from lstm_strategy import walk_forward as wf

    from .conftest import TINY_MODEL, TINY_TRAIN
    torch.set_num_threads(2)  # as a fresh worker inherits: one per core
    bars = load_ohlcv(ROOT / "data" / "AAPL.csv").loc["2008":"2009"]
    features = build_features(bars)
    result = wf(features, make_target(bars["Close"]), TINY_MODEL, TINY_TRAIN, device="cpu",
                progress=False)
    seen = []

    class Probe(LSTMStrategy):
        def next(self) -> None:
            seen.append(torch.get_num_threads())
            super().next()

    backtest({"AAPL": bars}, Probe, extra={"AAPL": features}, stream=result.stream(),
             feature_lines=tuple(features.columns), trade_start=result.first_forecast_date)
    return max(seen)


def test_parallel_workers_step_models_on_one_thread_each() -> None:
    import multiprocessing

    from lstm_strategy.sweep.backends import start_method

    # fork, as the sweep pool does, unless this process has used CUDA (then autograd's
    # device threads make a forked child's training fail, so the pool spawns)
    with multiprocessing.get_context(start_method()).Pool(2) as pool:
        assert pool.map(_threads_in_a_worker, [0, 1]) == [1, 1]


def test_default_macro_is_left_out_with_a_note_where_it_does_not_cover(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Bars after 2017 (AAPL's prices, dated 20 years later): no stale US macro carried on."""
    from lstm_strategy import load_ohlcv
    bars = load_ohlcv(ROOT / "data" / "AAPL.csv").loc["2008-01-01":"2011-12-31"]
    later = bars.set_axis(bars.index + pd.Timedelta(days=7305))
    later.to_csv(tmp_path / "LATER.csv", index_label="Date")
    overrides = [o for o in tiny_overrides() if not o.startswith(("data.start", "data.end"))]
    config = load_config(None, overrides, device="cpu",
                         **{"data.paths": [str(tmp_path / "LATER.csv")]})
    with pytest.warns(UserWarning, match="macro features left out"):
        result = run_experiment(config, progress=False)
    assert not [c for c in result.features["LATER"].columns if c.startswith("macro_")]
    note = next(n for n in result.notes if "macro features left out" in n)
    assert "data.macro: FILE" in note and "stops 2017-03-29" in note
    # a file the user named that does not cover the bars is an error naming the dates
    args = ["--data", str(tmp_path / "LATER.csv"), "--set",
            f"data.macro={ROOT / 'data' / 'macro_us_quarterly.csv'}", "--out",
            str(tmp_path / "r")]
    code, err = run_cli(capsys, *args)
    assert code == 2 and "macro_us_quarterly.csv does not cover the bars" in err
    assert "stops 2009-09-30" in err and not (tmp_path / "r").exists()


def test_metrics_read_as_percentages_and_counts() -> None:
    from lstm_strategy.evaluation.metrics import format_metric
    assert format_metric("total_return", 15.5207) == "+1,552.1%"
    assert format_metric("max_drawdown", 0.4334) == "43.3%"
    assert format_metric("n_trades", 42.0) == "42"
    assert format_metric("sharpe", 1.14146) == "1.141"
    assert format_metric("win_rate", None) == "–"


def test_multi_asset_report_shows_every_ticker(tmp_path: Path, capsys: pytest.CaptureFixture
                                               ) -> None:
    args = ["run", "--out", str(tmp_path / "multi"), "--device", "cpu", "--data",
            str(ROOT / "data" / "AAPL.csv"), str(ROOT / "data" / "MSFT.csv")]
    for item in tiny_overrides():
        args += ["--set", item]
    assert main(args) == 0
    out = capsys.readouterr().out
    lstm_row = next(line for line in out.splitlines() if line.startswith("lstm "))
    assert "%" in lstm_row and ".000" not in lstm_row  # percentages and whole trade counts
    assert "forecast AAPL:" in out and "forecast MSFT:" in out
    html = (tmp_path / "multi" / "report.html").read_text()
    for ticker in ("AAPL", "MSFT"):  # a price-and-fills chart for each, behind a selector
        assert f"{ticker}: close with the LSTM strategy" in html
    assert re.search(r"<td>[+-][\d,]+\.\d%</td>", html)


def test_sigterm_while_writing_leaves_nothing(tmp_path: Path) -> None:
    """Killed like a batch scheduler kills: SIGTERM mid-write removes the temporary folder."""
    import signal
    import subprocess
    import sys
    import time
    out = tmp_path / "run"
    args = [sys.executable, "-m", "lstm_strategy", "run", "--quiet", "--device", "cpu",
            "--out", str(out)]
    for item in tiny_overrides(**{"report.save_models": "true"}):
        args += ["--set", item]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".run.*.tmp")) and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.002)
    assert proc.poll() is None, "the run ended before its folder was being written"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err.decode()[-1000:]
    assert "terminated (SIGTERM); no run folder was written" in err.decode()
    assert list(tmp_path.iterdir()) == []


def test_stale_temp_folders_of_killed_runs_are_removed(tmp_path: Path, capsys: pytest.CaptureFixture
                                                       ) -> None:
    out = tmp_path / "run"
    dead = tmp_path / ".run.99999999.abcd.tmp"  # a SIGKILLed run's leftovers (no such pid)
    (dead / "models_AAPL.pt.tmp").parent.mkdir()
    (dead / "models_AAPL.pt.tmp").write_bytes(b"x" * 1000)
    old = tmp_path / ".run.old-99999999"
    old.mkdir()
    live = tmp_path / f".run.{os.getpid()}.live.tmp"  # a run still going: left alone
    live.mkdir()
    args = ["run", "--quiet", "--device", "cpu", "--out", str(out)]
    for item in tiny_overrides():
        args += ["--set", item]
    assert main(args) == 0
    assert not dead.exists() and not old.exists() and live.exists()
    assert (out / "report.html").exists()


def test_check_validates_the_device_as_run_does(capsys: pytest.CaptureFixture) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    assert main(["check", "--device", "cuda"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_config_data_paths_are_read_relative_to_the_config_file(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch
                                                                  ) -> None:
    project = tmp_path / "project"
    (project / "bars").mkdir(parents=True)
    (project / "bars" / "MINE.csv").write_text((ROOT / "data" / "MSFT.csv").read_text())
    (project / "exp.yaml").write_text("data:\n  paths: [bars/MINE.csv]\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(project / "exp.yaml")
    assert config.data.paths == (str((project / "bars" / "MINE.csv").resolve()),)
    # a path that is not beside the file is left for the current folder, then shipped data
    assert load_config(project / "exp.yaml", ["data.paths=[data/AAPL.csv]"]).data.paths == (
        "data/AAPL.csv",)
    from lstm_strategy.config import resolve_path
    assert resolve_path("data/AAPL.csv").is_file()  # the shipped sample, from anywhere


def test_the_report_tables_equal_what_the_run_folder_files_give_by_hand(tmp_path: Path
                                                                        ) -> None:
    """Monthly/yearly returns from equity.csv, costs from orders.csv and the bars, and the
    trade list (trades.csv, with size and exit price) from the fills."""
    from lstm_strategy.evaluation.tables import costs_paid, period_returns

    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--quiet",
                 *[p for s in tiny_overrides() for p in ("--set", s)]]) == 0
    equity = pd.read_csv(out / "equity.csv", index_col="date", parse_dates=True)["lstm"]
    table = period_returns(equity)
    for (year, month), last in equity.groupby([equity.index.year, equity.index.month]).last(
            ).items():
        earlier = equity[equity.index < pd.Timestamp(year=year, month=month, day=1)]
        start = earlier.iloc[-1] if len(earlier) else equity.iloc[0]
        assert table.loc[year].iloc[month - 1] == pytest.approx(last / start - 1, rel=1e-12)
    for year, last in equity.groupby(equity.index.year).last().items():
        earlier = equity[equity.index.year < year]
        start = earlier.iloc[-1] if len(earlier) else equity.iloc[0]
        assert table.loc[year, "Year"] == pytest.approx(last / start - 1, rel=1e-12)
    orders = pd.read_csv(out / "orders.csv", parse_dates=["date"])
    bars = load_ohlcv(ROOT / "data" / "AAPL.csv").loc["2008-01-01":"2011-12-31"]
    trades = pd.read_csv(out / "trades.csv", parse_dates=["entry_date", "exit_date"])
    paid = costs_paid(orders, {"AAPL": bars}, trades)
    slip = sum(abs(o.price - bars.loc[o.date, "Open"]) * abs(o.size) for o in orders.itertuples())
    assert paid["commission"] == pytest.approx(orders["commission"].sum(), rel=1e-12)
    assert paid["slippage"] == pytest.approx(slip, rel=1e-12) and paid["slippage"] > 0
    assert paid["net_pnl"] == pytest.approx(trades["pnl_net"].sum(), rel=1e-9)
    # every trade here is one buy and one sell: its size and exit price are those fills'
    closed = trades[trades["status"] == "closed"]
    buys, sells = orders[orders["side"] == "buy"], orders[orders["side"] == "sell"]
    assert len(closed) > 3
    np.testing.assert_allclose(closed["size"], buys["size"].iloc[:len(closed)])
    np.testing.assert_allclose(closed["exit_price"], sells["price"].iloc[:len(closed)],
                               rtol=1e-9)
    page = (out / "report.html").read_text()
    assert "returns by month and year" in page and "what costs took" in page
    assert "Backtest report: default (AAPL)" in page
