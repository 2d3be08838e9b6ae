"""Live and paper trading: parity with the backtest, crash and resume, feed states."""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from lstm_strategy import build_features, load_config, run_experiment
from lstm_strategy.backtest import make_cerebro
from lstm_strategy.backtest.strategies import LSTMStrategy
from lstm_strategy.cli import main
from lstm_strategy.config import BrokerConfig
from lstm_strategy.errors import DataWarning
from lstm_strategy.live import LiveForecaster, paper
from lstm_strategy.live.feeds import END, BarFeed, ReplaySource, TailSource, frame_bars
from lstm_strategy.live.journal import Journal, JournalMismatch, RunnerBusy
from lstm_strategy.online_features import OnlineFeatures

from .conftest import DATA, ROOT, TINY_MODEL, TINY_TRAIN, tiny_overrides
from .test_browser import CHROMIUM, assert_renders

TABLES = ("bars", "orders", "fills", "account")
SETS = [part for value in tiny_overrides() for part in ("--set", value)]


def tiny(*extra: str, **values: str) -> object:
    return load_config(None, tiny_overrides(**values) + list(extra), device="cpu")


def journal_tables(folder: Path) -> dict[str, pd.DataFrame]:
    with sqlite3.connect(folder / "journal.sqlite") as db:
        return {t: pd.read_sql_query(f"SELECT * FROM {t} ORDER BY seq", db) for t in TABLES}


def assert_paper_equals_run(result: object, run: object) -> None:
    """The same fills (date, side, size, price, commission) and equity, bit for bit."""
    lstm = run.backtests["lstm"]
    fills = lstm.fills
    assert len(result.fills) == len(fills) > 0
    for column in ("side", "size", "price", "commission"):
        np.testing.assert_array_equal(result.fills[column].to_numpy(), fills[column].to_numpy())
    equity = result.equity["value"].loc[lstm.equity.index]
    np.testing.assert_array_equal(equity.to_numpy(), lstm.equity["value"].to_numpy())


@pytest.mark.parametrize("tickers", [["AAPL"], ["AAPL", "MSFT", "IBM"]])
def test_paper_replay_in_parity_mode_equals_run_bit_for_bit(tmp_path: Path,
                                                           tickers: list[str]) -> None:
    paths = [str(DATA / f"{t}.csv") for t in tickers]
    config = tiny(**{"data.paths": "[" + ", ".join(paths) + "]"})
    run = run_experiment(config, progress=False)
    source = "replay:" + ",".join(paths)
    result = paper(config, source, tmp_path / "paper", parity=True)
    assert result.metrics["model_swaps"] == len(tickers) * 7  # every fold, every ticker
    assert_paper_equals_run(result, run)


def test_the_default_config_on_a_replay_equals_run_across_every_fold(tmp_path: Path) -> None:
    """The issue's own words: `paper --source replay:data/AAPL.csv` with the default config,
    in parity mode, gives run's fills and equity bit for bit (40 folds, hidden 64 x 2)."""
    out = tmp_path / "paper"
    assert main(["paper", "--source", f"replay:{DATA / 'AAPL.csv'}", "--out", str(out),
                 "--parity", "--quiet", "--no-report"]) == 0
    config = load_config(None)  # as the command line has it
    run = run_experiment(config, progress=False)
    result = paper(config, f"replay:{DATA / 'AAPL.csv'}", out,
                   parity=True)  # the finished folder: replayed and checked, nothing new
    assert result.resumed_bars == 3270 and result.metrics["model_swaps"] == 40
    assert_paper_equals_run(result, run)


SP4 = [str(DATA / "sp32" / f"{t}.csv") for t in ("XOM", "CVX", "JPM", "BAC")]


@pytest.mark.parametrize("kind", ["pooled", "lstm_gnn"])
def test_a_multi_asset_model_steps_every_asset_at_once_and_equals_run(tmp_path: Path,
                                                                     kind: str) -> None:
    config = tiny(**{"data.paths": "[" + ", ".join(SP4) + "]", "model.kind": kind})
    run = run_experiment(config, progress=False)
    result = paper(config, "replay", tmp_path / "paper", parity=True)
    assert result.metrics["model_swaps"] == 7  # one model for the four assets
    assert_paper_equals_run(result, run)


def test_the_live_step_of_a_multi_asset_model_follows_its_batch_forecasts() -> None:
    """Outside parity a pooled model steps once a bar for all assets (WalkForwardStream):
    the batch forecasts within float32 rounding."""
    from lstm_strategy import build_features, load_many, make_target, walk_forward
    from lstm_strategy.forecaster import WalkForwardStream

    bars = {Path(p).stem: f.loc["2005-01-01":"2007-12-31"] for p, f in zip(
        SP4, load_many(SP4).values(), strict=True)}
    features = {t: build_features(f) for t, f in bars.items()}
    targets = {t: make_target(f["Close"]) for t, f in bars.items()}
    result = walk_forward(features, targets, TINY_MODEL.with_kind("pooled"), TINY_TRAIN,
                          device="cpu", progress=False)
    stream = WalkForwardStream([(f.retrain_date, f.forecaster) for f in result.folds],
                               TINY_TRAIN.context_bars)
    rows = np.stack([features[t].to_numpy() for t in features], axis=1)
    steps = np.array([stream.step(when, row) for when, row in zip(
        features["XOM"].index, rows, strict=True)])
    batch = result.predictions.to_numpy()
    known = ~np.isnan(batch)
    assert known.sum() > 1000 and np.array_equal(np.isnan(steps), ~known)
    np.testing.assert_allclose(steps[known], batch[known], rtol=1e-4, atol=1e-6)


def test_paper_cli_replays_resumes_and_refuses_bad_input(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["paper", "--source", f"replay:{DATA / 'AAPL.csv'}", "--out", str(tmp_path / "p"),
            "--parity", "--quiet", *SETS]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "paper run of 1009 bars" in first and "7 model swaps" in first
    # the report: the backtest of the bars it saw, reconciled: equal in parity mode
    assert "fills 28 / 28 (28 identical)" in first and "largest equity difference 0" in first
    for name in ("equity.csv", "fills.csv", "orders.csv", "metrics.json", "journal.sqlite",
                 "config.yaml", "report.html", "reconciliation.csv"):
        assert (tmp_path / "p" / name).exists()
    page = (tmp_path / "p" / "report.html").read_text()
    assert "Paper run vs backtest of the same bars" in page and "bit for bit" in page
    if CHROMIUM:  # the page in a real browser: its charts decoded, nothing on the console
        assert_renders(tmp_path / "p" / "report.html", charts=6)
    recon = pd.read_csv(tmp_path / "p" / "reconciliation.csv")
    assert len(recon) == 661 and (recon["difference"] == 0).all()
    args.append("--no-report")
    assert main(args) == 0  # the same command on a finished run: replayed, checked, done
    assert "1009 resumed from the journal" in capsys.readouterr().out
    assert main(["paper", "--source", "tick:x", "--out", str(tmp_path / "q")]) == 2
    assert "--source 'tick:x'" in capsys.readouterr().err
    other = [*args, "--set", "train.epochs=3"]
    assert main(other) == 2  # another config on the same folder
    assert "this run was started with config" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "q")]) == 2
    assert "no journal.sqlite" in capsys.readouterr().err


def test_outside_parity_the_report_says_where_the_paper_run_differs(tmp_path: Path) -> None:
    from lstm_strategy.reports.live import write_live_report

    with pytest.warns(DataWarning, match="as fast as possible with folds trained in the"):
        paper(tiny(), "replay", tmp_path, parity=False)  # background folds: late
    rec = write_live_report(tmp_path)
    assert rec.summary["first_difference"] is not None and rec.summary["max_difference"] > 0
    assert "differs from the backtest" in (tmp_path / "report.html").read_text()


def test_a_journal_that_differs_from_the_replay_stops_at_its_bar(tmp_path: Path) -> None:
    config = tiny()
    paper(config, "replay", tmp_path, parity=True)
    with sqlite3.connect(tmp_path / "journal.sqlite") as db:
        db.execute("UPDATE bars SET forecast = forecast + 1e-12 WHERE seq = 700")
    with pytest.raises(JournalMismatch, match="bar 700 replays differently"):
        paper(config, "replay", tmp_path, parity=True)


def test_a_second_runner_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    held = Journal(tmp_path, {"config": "x"})
    try:
        with pytest.raises(RunnerBusy, match="another paper runner"):
            Journal(tmp_path, {"config": "x"})
    finally:
        held.close()
    Journal(tmp_path, {"config": "x"}).close()  # free again once the first one ends


def test_a_replay_cut_after_t_equals_the_uncut_replay_up_to_t(tmp_path: Path) -> None:
    full = journal_tables(paper(tiny(), "replay", tmp_path / "full", parity=True).folder)
    cut = journal_tables(paper(tiny(**{"data.end": "2010-08-31"}), "replay",
                               tmp_path / "cut", parity=True).folder)
    last = cut["account"]["seq"].max()
    assert 0 < last < full["account"]["seq"].max()
    for table in TABLES:
        pd.testing.assert_frame_equal(cut[table], full[table][full[table]["seq"] <= last]
                                      .reset_index(drop=True))


def _paper_command(out: Path, speed: int | None = None) -> list[str]:
    return [sys.executable, "-m", "lstm_strategy", "paper", "--source",
            f"replay:{DATA / 'AAPL.csv'}", "--out", str(out), "--parity",
            *(["--speed", str(speed)] if speed else []), "--quiet", "--no-report", *SETS]


def _journaled(out: Path) -> int:
    if not (out / "journal.sqlite").exists():
        return 0
    try:
        with sqlite3.connect(out / "journal.sqlite", timeout=5) as db:
            return db.execute("SELECT COALESCE(MAX(seq), 0) FROM account").fetchone()[0]
    except sqlite3.OperationalError:  # created, its tables not yet
        return 0


def test_a_runner_killed_at_random_moments_resumes_to_the_uninterrupted_journal(
        tmp_path: Path) -> None:
    """20 SIGKILLs: after a random number of new bars (in a bar or in its commit), and every
    fourth one while a fold trains (the bar before a retrain bar is journaled, its
    successor's step is training)."""
    whole = journal_tables(paper(tiny(), "replay", tmp_path / "whole", parity=True).folder)
    total = len(whole["account"])  # bars in the whole run
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rng = np.random.default_rng(7)
    retrains = [349 + 100 * k for k in range(7)]  # the steps that train fold k
    kills, progress = 0, []
    for cycle in range(20):
        start = _journaled(out)
        if cycle % 4 == 3 and any(r > start + 1 for r in retrains):
            target, linger = next(r for r in retrains if r > start + 1) - 1, 0.15
        else:
            target, linger = start + int(rng.integers(1, 90)), float(rng.uniform(0, 0.01))
        proc = subprocess.Popen(_paper_command(out), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while proc.poll() is None and _journaled(out) < target and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(linger)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        progress.append(_journaled(out))
        if progress[-1] == total:
            break
    assert kills >= 10 and len(set(progress)) >= 10  # killed at many different bars
    done = subprocess.run(_paper_command(out), env=env, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    resumed = journal_tables(out)
    for table in TABLES:
        pd.testing.assert_frame_equal(resumed[table], whole[table])
    orders = resumed["orders"]
    assert not orders.duplicated(["seq", "n"]).any() and len(orders) == len(whole["orders"])


class _States(BarFeed):
    """A live feed that backfills DELAYED, goes LIVE, drops out, and comes back."""

    params = (("states", None),)

    def start(self) -> None:
        super().start()
        self.notifs.clear()
        self.put_notification(self.p.states[0])

    def _load(self) -> bool | None:
        loaded = super()._load()  # says LIVE: the source has no status of its own
        if loaded:
            index = self.delivered - 1
            self.put_notification(self.p.states[max(k for k in self.p.states if k <= index)])
        return loaded


def test_orders_only_while_the_feed_is_live_and_repeats_are_refused(aapl: pd.DataFrame
                                                                    ) -> None:
    bars = aapl.iloc[:60]
    flips = pd.Series(np.where(np.arange(60) % 4 < 2, 0.01, -0.01), index=bars.index)
    delivered = frame_bars(bars)
    delivered.insert(45, delivered[44])  # the same bar sent twice
    del delivered[52:56]  # and four bars that never come (a hole of six days)
    states = {0: BarFeed.DELAYED, 10: BarFeed.LIVE, 30: BarFeed.DISCONNECTED,
              40: BarFeed.LIVE}

    class Listed:
        def __init__(self) -> None:
            self.bars = list(delivered)

        def next_bar(self, timeout: float = 0.0) -> object:
            return self.bars.pop(0) if self.bars else END

    cerebro = make_cerebro(BrokerConfig(commission_bps=0, slippage_bps=0))
    cerebro.adddata(_States(source=Listed(), states=states), name="AAPL")
    cerebro.addstrategy(LSTMStrategy, forecasts={"AAPL": flips}, allow_short=True)
    strat = cerebro.run()[0]
    decided = {bt.num2date(d) for _, d, *_ in strat.records}
    fills = [f["date"] for f in strat.fills]
    # decisions only on LIVE bars (delivered 10..29 and 40.. in feed order); fills follow
    assert min(decided) == bars.index[10] and not any(
        bars.index[30] <= d <= bars.index[39] for d in decided)
    assert bars.index[29] in decided and bars.index[40] in decided
    assert fills and all(f > bars.index[10] for f in fills)
    log = [what for _, _, what in strat.feed_log]
    assert "not traded: DELAYED" in log and "not traded: DISCONNECTED" in log
    assert "repeated or out-of-order bar refused" in log
    holes = [what for what in log if what.startswith("missing bars")]
    assert len(holes) == 1 and "2000-05-11" in holes[0] and "2000-05-18" in holes[0]


def test_a_model_slower_than_the_bars_keeps_the_old_one_and_says_so(aapl: pd.DataFrame
                                                                     ) -> None:
    bars = frame_bars(aapl.loc["2008-01-01":"2010-12-31"])
    events: list[tuple[str, dict]] = []
    live = LiveForecaster(OnlineFeatures(), TINY_MODEL, TINY_TRAIN, background=True,
                          on_event=lambda kind, details: events.append((kind, details)))
    forecasts = []
    try:
        for bar in bars:  # far faster than a fold trains
            forecasts.append(live.on_bar(*bar))
            if [d["fold"] for k, d in events if k == "train_started"] == [0]:
                live.wait()  # fold 0 is ready by its retrain bar; fold 1 will be late
    finally:
        live.close()
    swaps = [d for k, d in events if k == "swap"]
    late = [d for k, d in events if k == "late_model"]
    assert swaps[0]["fold"] == 0 and swaps[0]["position"] == swaps[0]["retrain_bar"]
    assert late and late[0]["fold"] == 1 and late[0]["kept_fold"] == 0  # said so
    fold1 = TINY_TRAIN.step + swaps[0]["retrain_bar"]
    taken = swaps[1]["position"] if len(swaps) > 1 else len(bars)
    assert taken > fold1  # fold 1 came late (or not before the bars ended)...
    assert all(math.isfinite(f) for f in forecasts[fold1:taken])  # ...fold 0 went on
    assert all(math.isnan(f) for f in forecasts[:swaps[0]["retrain_bar"]])


def test_tail_source_turns_appended_rows_into_bars(tmp_path: Path, aapl: pd.DataFrame) -> None:
    path = tmp_path / "AAPL.csv"
    aapl.iloc[:5].to_csv(path)
    tail = TailSource(path, idle=1.0, poll=0.05)
    first = []
    for _ in range(5):
        first.append(tail.next_bar(0.5))
        assert tail.last_status == "DELAYED"  # rows there at the start are backfill
    assert [b[0] for b in first] == list(aapl.index[:5])
    assert tail.next_bar(0.1) is None  # nothing new yet
    aapl.iloc[:8].to_csv(path)  # another process appends three rows
    assert [tail.next_bar(1.0)[0] for _ in range(3)] == list(aapl.index[5:8])
    assert tail.last_status == "LIVE"
    assert tail.next_bar(2.0) is END  # idle for a second: the source ends


def test_a_tailed_file_warms_up_on_its_backfill_and_trades_only_appended_rows(
        tmp_path: Path, aapl: pd.DataFrame) -> None:
    """`paper --source tail:FILE`: the rows present at the start train the folds and move
    the state (DELAYED, no order); rows another process appends are LIVE and traded."""
    import threading

    bars = aapl.loc["2008-01-01":"2011-12-31"]
    path = tmp_path / "AAPL.csv"
    bars.iloc[:900].to_csv(path)

    def append() -> None:
        for end in range(910, len(bars) + 10, 10):  # the last step writes every row
            time.sleep(0.05)
            bars.iloc[:end].to_csv(path.with_suffix(".tmp"))
            path.with_suffix(".tmp").replace(path)

    writer = threading.Thread(target=append)
    writer.start()
    try:
        result = paper(tiny(**{"data.paths": f"[{path}]"}), f"tail:{path}", tmp_path / "t",
                       parity=True, idle=3.0)
    finally:
        writer.join()
    journal = journal_tables(tmp_path / "t")
    with sqlite3.connect(tmp_path / "t" / "journal.sqlite") as db:
        status = [s for (s,) in db.execute("SELECT status FROM bars ORDER BY seq")]
    backfill = status.index("LIVE")  # the rows in the file when the runner first read it
    assert 900 <= backfill < len(bars) - 50 and set(status[backfill:]) == {"LIVE"}
    assert set(status[:backfill]) == {"DELAYED"} and len(journal["account"]) == len(bars)
    placed = journal["orders"]["seq"]
    assert len(placed) and placed.min() > backfill  # orders only for bars decided LIVE
    assert result.metrics["model_swaps"] == 7


def test_replay_source_paces_bars(aapl: pd.DataFrame) -> None:
    """At --speed 0.5 the next bar is two seconds away: asked without waiting, the source
    has none yet (backtrader's live-feed answer), and it never skips or repeats one."""
    paced = ReplaySource(aapl.iloc[:3], speed=0.5)
    assert paced.next_bar(0.0)[0] == aapl.index[0]
    assert paced.next_bar(0.0) is None and paced.next_bar(0.0) is None
    fast = ReplaySource(aapl.iloc[:3])
    assert [fast.next_bar(0.0)[0] for _ in range(3)] == list(aapl.index[:3])
    assert fast.next_bar(0.0) is END


def test_a_background_run_killed_after_a_swap_resumes_with_the_swap_where_it_was(
        tmp_path: Path) -> None:
    """Outside parity the swap bar depends on the clock; a resumed run swaps at the
    journaled bar (from the checkpoint), so its replay checks out against the journal."""
    out = tmp_path / "bg"
    command = [arg for arg in _paper_command(out, speed=50) if arg != "--parity"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    swapped, training = None, False
    deadline = time.monotonic() + 90
    while not (swapped and training) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if (out / "journal.sqlite").exists():
            with sqlite3.connect(out / "journal.sqlite") as db:
                kinds = [k for (k,) in db.execute("SELECT kind FROM events ORDER BY seq, n")]
                found = db.execute("SELECT seq FROM events WHERE kind = 'swap'").fetchone()
            swapped = found[0] if found else None
            training = kinds.count("train_started") > kinds.count("swap")  # a fold in flight
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert swapped is not None, "no background model took over in time"
    assert children, "no background training process at the kill"
    # the trainer watches its driver every 0.5 s once its imports are done
    gone = time.monotonic() + 15
    while [c for c in children if Path(f"/proc/{c}").exists()] and time.monotonic() < gone:
        time.sleep(0.2)
    assert not [c for c in children if Path(f"/proc/{c}").exists()], "an orphan trainer"
    before = journal_tables(out)
    speed = command.index("--speed")
    rest = command[:speed] + command[speed + 2:]  # the rest as fast as it goes
    done = subprocess.run(rest, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    after = journal_tables(out)
    last = before["account"]["seq"].max()
    for table in TABLES:
        kept = after[table][after[table]["seq"] <= last].reset_index(drop=True)
        # an empty table reads back as object columns
        pd.testing.assert_frame_equal(kept, before[table], check_dtype=bool(len(kept)))
    with sqlite3.connect(out / "journal.sqlite") as db:
        swaps = [s for (s,) in db.execute("SELECT seq FROM events WHERE kind = 'swap'")]
    assert swaps[0] == swapped


def test_a_macro_file_that_grows_while_running_reaches_the_online_features(
        tmp_path: Path, aapl: pd.DataFrame) -> None:
    from lstm_strategy.data import load_exogenous
    from lstm_strategy.live.runner import GrowingInputs

    macro = load_exogenous(DATA / "macro_us_daily.csv")
    path = tmp_path / "macro.csv"
    macro.loc[:"2009-12-31"].to_csv(path)
    features = OnlineFeatures(exogenous=load_exogenous(path), exog_prefix="macro_")
    growing = GrowingInputs(tiny(**{"data.macro": str(path)}), [features])
    bars = aapl.loc["2009-06-01":"2010-03-31"]
    rows = []
    for when, *bar in frame_bars(bars):
        if when == pd.Timestamp("2010-01-04"):  # the publisher appends the new year
            macro.loc[:"2010-12-31"].to_csv(path)
        growing()
        rows.append(features.update(when, *bar))
    batch = build_features(bars, exogenous=macro, exog_prefix="macro_")
    got = pd.DataFrame(rows, index=bars.index, columns=list(features.columns))
    pd.testing.assert_frame_equal(got, batch, check_exact=False, rtol=1e-12)


def test_a_damaged_journal_is_refused_by_name_and_left_as_it_is(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "journal.sqlite").write_bytes(b"not a database" * 100)
    args = ["paper", "--source", f"replay:{DATA / 'AAPL.csv'}", "--out", str(tmp_path),
            "--parity", "--quiet", "--no-report", *SETS]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "journal.sqlite: not a paper run's journal" in err and "Traceback" not in err
    assert (tmp_path / "journal.sqlite").read_bytes() == b"not a database" * 100
    Journal(tmp_path / "fresh", {}).close()  # the lock was released: the folder is usable
