"""`lstm-backtest`: run an experiment from a YAML config, or check one without training."""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .data import stamp
from .errors import BAD_INPUT, ConfigError, DataWarning
from .evaluation.metrics import format_metric
from .resources import configs_dir

if TYPE_CHECKING:  # the config module loads torch: each command imports what it needs
    from .config import ExperimentConfig

EXIT_BAD_INPUT = 2

_EPILOG = f"""\
examples:
  lstm-backtest run                                  default experiment on data/AAPL.csv
  lstm-backtest run --config strategies/lstm_long_short.yaml
  lstm-backtest run --data data/MSFT.csv --set train.epochs=10 --out runs/msft
  lstm-backtest check --config my.yaml               validate config and data, no training
  lstm-backtest audit --config my.yaml               prove it does not look ahead
  lstm-backtest compare --config strategies/sp32_compare.yaml --out runs/sp32
  lstm-backtest paper --source replay:data/AAPL.csv --out runs/paper --parity

ready configs: {configs_dir()}
exit status: 0 success, 2 bad input (config, data, output folder), 1 anything else
             (audit: 1 = a leak found)
"""


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE.yaml",
                        help="experiment config (default: the built-in default experiment)")
    parser.add_argument("--data", nargs="+", metavar="FILE",
                        help="OHLCV CSV/parquet file(s), one per ticker (overrides data.paths)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"],
                        help="where the model runs (default: config's device, auto)")
    parser.add_argument("--seed", type=int, help="random seed (train.seed)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="torch CPU threads (default 1: fastest on a shared or busy "
                             "machine; 0 = one per core)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override one config key, e.g. --set train.epochs=5 "
                             "(repeatable; the value is read as YAML)")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback on errors")


def _tracking(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--track", choices=["mlflow", "none"],
                        help="log to an experiment tracker (default: the config's track.backend)")
    parser.add_argument("--track-uri", metavar="URI",
                        help="MLflow tracking URI (default: track.uri, else "
                             "sqlite:///mlruns.db here)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="lstm-backtest",
        description="Walk-forward LSTM forecasts traded in backtrader, reported against "
                    "buy & hold, an SMA crossover and a naive forecast.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser(
        "run", help="train walk-forward, backtest, write a run folder",
        description="Train the forecaster walk-forward (never on data after the forecast "
                    "date), backtest LSTMStrategy and the baselines with the configured "
                    "costs, and write a run folder: metrics.json, equity.csv, trades.csv, "
                    "orders.csv, predictions.csv, folds.csv, config.yaml, PNG charts, "
                    "report.html. The folder appears only when complete.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(run)
    run.add_argument("--out", metavar="DIR",
                     help="run folder to write (default: runs/NAME-YYYYmmdd-HHMMSS)")
    run.add_argument("--overwrite", action="store_true",
                     help="replace --out if it exists (whole, after the new run is written)")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.add_argument("--no-cache", action="store_true",
                     help="retrain even when the forecast cache holds these inputs' results")
    _tracking(run)
    sweep = sub.add_parser(
        "sweep", help="search strategy and model settings; rank, deflate, hold out",
        description="Run (or resume) a parameter sweep: each distinct model config is trained "
                    "once, every strategy point is backtested on its forecasts, trials are "
                    "ranked on the in-sample span, and the best is reported with its Deflated "
                    "Sharpe Ratio, the Probability of Backtest Overfitting and its hold-out "
                    "result. Writes study.db (the Optuna ledger), results.csv and "
                    "sweep_report.html; rerunning the command resumes.")
    sweep.add_argument("--config", metavar="SWEEP.yaml", required=True, help="the sweep file")
    sweep.add_argument("--out", metavar="DIR", required=True, help="the sweep folder")
    sweep.add_argument("--workers", type=int, metavar="N", help="parallel workers (default: "
                                                                  "the sweep file's, else 1)")
    sweep.add_argument("--backend", choices=["local", "ray"],
                       help="local processes (default) or a Ray cluster")
    sweep.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    sweep.add_argument("--no-cache", action="store_true",
                       help="retrain each model config once even if the cache holds it")
    sweep.add_argument("--quiet", action="store_true", help="no progress output")
    sweep.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    _tracking(sweep)
    compare = sub.add_parser(
        "compare", help="several model kinds on one universe, side by side",
        description="Train each model kind of compare.models (per-asset, pooled, LSTM-GNN), "
                    "with and without macro (compare.macro), walk-forward on the same bars; "
                    "trade the cross-sectional strategy (portfolio.*) on each; write "
                    "comparison.csv/.md (IC, rank IC, ICIR, directional accuracy vs naive, "
                    "long-short, annual return, information ratio vs equal-weight buy & "
                    "hold, drawdown, turnover), daily_ic.csv, equity.csv, forecasts.parquet "
                    "and compare_report.html.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(compare)
    compare.set_defaults(config="sp32_compare")
    compare.add_argument("--out", metavar="DIR",
                         help="folder to write (default: runs/NAME-compare-YYYYmmdd-HHMMSS)")
    compare.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    compare.add_argument("--quiet", action="store_true", help="no progress output")
    compare.add_argument("--no-cache", action="store_true",
                         help="retrain even when the forecast cache holds these results")
    _tracking(compare)
    audit = sub.add_parser(
        "audit", help="prove a config (your features and model too) does not look ahead",
        description="Run the experiment's features and walk-forward forecasts, then again on "
                    "copies of the data cut after several dates and on copies whose future "
                    "changed (prices, exogenous values after publication, headlines after "
                    "their time); check that the model's output at t ignores rows after t "
                    "and that streaming gives the batch forecasts. Prints every value that "
                    "changed before it could have been known: the check, the feature, fold "
                    "model or forecast, the first date and the size. Exit status: 0 clean, "
                    "1 a leak found, 2 bad input.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(audit)
    audit.add_argument("--cuts", type=int, default=3, metavar="N",
                       help="cut dates to test (default 3; --thorough: at least 8)")
    audit.add_argument("--epochs", type=int, default=2, metavar="N",
                       help="training epochs per fold in the audit (default 2; 0: as the "
                            "config says); a leak is a leak at any size")
    audit.add_argument("--thorough", action="store_true", help="more cut dates")
    audit.add_argument("--quiet", action="store_true", help="no progress output")
    live = sub.add_parser(
        "paper", help="the strategy on a replayed or tailed file, journaled (paper trading)",
        description="Run the config's LSTMStrategy on a live-style feed on backtrader's "
                    "broker: features computed as bars arrive, walk-forward folds trained "
                    "on schedule. Every bar, forecast, order, fill, model swap and the "
                    "account go to DIR/journal.sqlite; a killed run resumes with the same "
                    "command. Writes equity.csv, fills.csv, orders.csv, metrics.json.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(live)
    live.add_argument("--source", required=True, metavar="SOURCE",
                      help="replay (the config's data), replay:FILE or tail:FILE (a file "
                           "another process appends rows to)")
    live.add_argument("--out", required=True, metavar="DIR", help="run folder (resumed)")
    live.add_argument("--parity", action="store_true",
                      help="train each fold at its bar, so a replay equals `run`")
    live.add_argument("--speed", type=float, metavar="BARS_PER_S",
                      help="replay at this many bars a second (default: as fast as possible)")
    live.add_argument("--idle", type=float, metavar="SECONDS",
                      help="tail: stop after this long without a new row (default: never)")
    live.add_argument("--quiet", action="store_true", help="no progress output")
    live.add_argument("--no-report", action="store_true",
                      help="skip the report at the end (lstm-backtest report DIR writes it)")
    report = sub.add_parser(
        "report", help="a paper run's report, reconciled with the backtest of its bars",
        description="Write RUN/report.html (the backtest report of the bars the paper run "
                    "saw, with the paper run reconciled against it at the top) and "
                    "RUN/reconciliation.csv. Works while the runner runs.")
    report.add_argument("run", metavar="RUN", help="the --out folder of a paper run")
    report.add_argument("--debug", action="store_true", help="full traceback on errors")
    check = sub.add_parser(
        "check", help="validate a config and its data without training",
        description="Load and validate the config and every data file, build the "
                    "features and print what a run would do (bars, warm-up, folds).")
    _common(check)
    return parser


def _config(args: argparse.Namespace) -> ExperimentConfig:
    from .config import load_config

    top = {"device": args.device, "train.seed": args.seed, "threads": args.threads}
    if args.data:
        top["data.paths"] = list(args.data)
    return load_config(args.config, args.overrides, **top)


def _check(args: argparse.Namespace) -> int:
    from .experiment import load_experiment_data
    from .features import warmup_bars
    from .forecaster import resolve_device
    from .models import class_path
    from .training import expanding_note, fold_schedule

    config = _config(args)
    resolve_device(config.device)  # a missing GPU is bad input here as it is for run
    bars, features, notes = load_experiment_data(config)
    for ticker, frame in bars.items():
        feats = features[ticker]
        first = warmup_bars(feats)
        folds = fold_schedule(len(frame), first, config.train)
        print(f"{ticker}: {len(frame)} bars {stamp(frame.index[0])}..{stamp(frame.index[-1])}, "
              f"{feats.shape[1]} features, {len(folds)} walk-forward folds, first forecast "
              f"{stamp(frame.index[folds[0]])}")
        costly = expanding_note(frame.index, folds, first, config.train)
        if costly:
            notes.append(f"{ticker}: {costly}")
    model = config.model
    described = ", ".join(f"{f.name}={getattr(model.knobs, f.name)!r}"
                          for f in dataclasses.fields(model.knobs))
    print(f"model: {model.kind} ({class_path(model.model_class)}), head {model.head}; "
          f"params: {described or 'none'}")
    for note in notes:
        print(f"note: {note}")
    print("config and data are valid.")
    return 0


def _audit(args: argparse.Namespace) -> int:
    from .audit import audit

    if args.cuts < 1 or args.epochs < 0:
        raise ConfigError(f"--cuts={args.cuts} must be >= 1 and --epochs={args.epochs} >= 0.")
    config = _config(args)
    started = time.perf_counter()
    result = audit(config, cuts=args.cuts, thorough=args.thorough,
                   epochs=args.epochs or None, say=_say(args))
    print(f"{config.name}: audited {len(result.checks)} checks at cuts "
          f"{', '.join(stamp(d) for d in result.cuts)} in {time.perf_counter() - started:.0f}s")
    for check in result.checks:
        print(f"  - {check}")
    if result.clean:
        print("clean: no feature, fold model or forecast changed before it could be known.")
        return 0
    table = result.table()
    print(f"LEAK: {len(table)} component(s) changed before they could have been known:")
    for row in table.itertuples():
        size = "a value against NaN" if row.size != row.size else f"size {row.size:.3g}"
        print(f"  {row.component}: {row.check}, first at {row.first_date} ({size}): "
              f"{row.detail}")
    return 1


def _sweep(args: argparse.Namespace) -> int:
    from .sweep.finished import finished_summary

    done = None if args.no_cache else finished_summary(args.config, args.out)
    if done is not None and (args.track == "none" or not (args.track or done.get("track"))):
        _print_sweep(Path(args.out), done["objective"], done["n_trials"], done["n_failed"], 0,
                     done["best"], done["dsr"] or {}, done["pbo"] or {})
        return 0
    from .sweep import load_sweep, sweep

    config = load_sweep(args.config, workers=args.workers, backend=args.backend)
    tracker = None
    if args.track != "none" and (args.track or config.track):
        from .tracking import tracker_for

        tracker = tracker_for(config.experiment({}), args.track or config.track,
                              args.track_uri)
    from .reports.sweep import write_sweep_report

    result = sweep(config, args.out, address=args.address, refresh=args.no_cache,
                   report=write_sweep_report,
                   progress=False if args.quiet else None)
    if tracker is not None:
        run_id = tracker.log_sweep(config.experiment({}), result, Path(args.out))
        print(f"tracked: MLflow run {run_id} ({tracker.uri}, experiment {tracker.experiment})")
    failed = int((result.table["status"] == "FAIL").sum()) if len(result.table) else 0
    _print_sweep(Path(args.out), config.objective, len(result.table), failed,
                 result.trainings, result.best, result.dsr or {}, result.pbo or {})
    return 0


def _print_sweep(out: Path, objective: str, n_trials: int, failed: int, trainings: int,
                 best: dict | None, dsr: dict, pbo: dict) -> None:
    """The sweep's summary lines (a finished sweep's rerun prints them from summary.json)."""
    print(f"{n_trials} trials ({failed} failed), {trainings} model training(s) this run; "
          f"results: {out / 'results.csv'}")
    if best:
        holdout = (best["holdout"] or {}).get(objective)
        print(f"best: trial {best['trial']} {best['params']}: in-sample {objective} "
              f"{format_metric(objective, best['metrics'].get(objective))}, hold-out "
              f"{format_metric(objective, holdout)}")
        print(f"Deflated Sharpe Ratio {format_metric('dsr', dsr.get('dsr'))} over "
              f"{dsr.get('n_trials')} trials; Probability of Backtest Overfitting "
              f"{format_metric('pbo', pbo.get('pbo'))}")
        print(f"report: {out / 'sweep_report.html'}")


def _say(args: argparse.Namespace) -> Callable[[str], None]:
    """Progress lines on stderr, or nothing with --quiet."""
    return (lambda message: None) if args.quiet else (
        lambda message: print(f"[lstm-backtest] {message}", file=sys.stderr, flush=True))


def _compare(args: argparse.Namespace) -> int:
    from .compare import markdown_table, run_comparison
    from .reports.compare import write_comparison
    from .reports.run import check_run_folder

    config = _config(args)
    out = Path(args.out) if args.out else Path("runs") / (
        f"{config.name}-compare-{time.strftime('%Y%m%d-%H%M%S')}")
    check_run_folder(out, overwrite=args.overwrite)
    tracker = _tracker(config, args)
    started = time.perf_counter()
    result = run_comparison(config, progress=None if not args.quiet else False,
                            say=_say(args), use_cache=not args.no_cache)
    write_comparison(result, out, overwrite=args.overwrite)
    if tracker is not None:
        run_id = tracker.log_comparison(config, result.table, out)
        print(f"tracked: MLflow run {run_id} ({tracker.uri}, experiment {tracker.experiment})")
    print(f"\n{config.name}: {len(result.bars)} assets from {stamp(result.start)}, "
          f"{time.perf_counter() - started:.0f}s")
    print(markdown_table(result.table))
    print(f"report: {out / 'compare_report.html'}")
    return 0


def _paper(args: argparse.Namespace) -> int:
    from .live import paper

    config = _config(args)
    started = time.perf_counter()
    result = paper(config, args.source, args.out, parity=args.parity, speed=args.speed,
                   idle=args.idle, say=_say(args))
    m = result.metrics
    resumed = f", {result.resumed_bars} resumed from the journal" if result.resumed_bars else ""
    print(f"{config.name}: paper run of {m['bars']} bars{resumed} in "
          f"{time.perf_counter() - started:.1f}s: {m['fills']} fills, {m['model_swaps']} "
          f"model swaps, total return {format_metric('total_return', m.get('total_return'))}"
          f" -> {args.out}")
    if not args.no_report:
        from .reports.live import write_live_report

        print(write_live_report(args.out).line())
    return 0


def _report(args: argparse.Namespace) -> int:
    from .reports.live import write_live_report

    reconciliation = write_live_report(args.run)
    print(reconciliation.line())
    print(f"report: {Path(args.run) / 'report.html'}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from .experiment import run_experiment
    from .reports.run import check_run_folder, write_run

    config = _config(args)
    out = Path(args.out) if args.out else Path("runs") / (
        f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    check_run_folder(out, overwrite=args.overwrite)  # before training, not after
    tracker = _tracker(config, args)  # a bad store fails now, not after training
    say = _say(args)
    started = time.perf_counter()
    result = run_experiment(config, progress=None if not args.quiet else False, log=say,
                            use_cache=not args.no_cache)
    say(f"writing {out}")
    write_run(result, out, overwrite=args.overwrite)
    table = result.summary_table()
    shown = table.astype(object).apply(lambda column: column.map(
        lambda value: format_metric(column.name, value)))
    print(f"\n{config.name}: {', '.join(result.bars)} from {stamp(result.trade_start)}, "
          f"{time.perf_counter() - started:.1f}s")
    print(shown.to_string())
    forecast = result.forecast_metrics
    for ticker, report in ({"": forecast} if "model" in forecast else forecast).items():
        accuracy = {k: format_metric("directional_accuracy", report[k]["directional_accuracy"])
                    for k in ("model", "naive_last", "naive_drift")}
        print(f"forecast{' ' + ticker if ticker else ''}: directional accuracy "
              f"{accuracy['model']} (naive: last return {accuracy['naive_last']}, drift "
              f"{accuracy['naive_drift']}), IC {format_metric('ic', report['model']['ic'])}")
    print(f"report: {out / 'report.html'}")
    if tracker is not None:
        run_id = tracker.log_run(config, result.metrics, out)
        print(f"tracked: MLflow run {run_id} ({tracker.uri}, experiment {tracker.experiment})")
    return 0


def _tracker(config: ExperimentConfig, args: argparse.Namespace) -> object | None:
    """The MLflow tracker the command logs to (checked now), or None."""
    if (args.track or config.track.backend) == "none":
        return None
    from .tracking import tracker_for

    return tracker_for(config, args.track, args.track_uri)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the run is so that it unwinds (and cleans up) like Ctrl-C."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def _show_note(message: Warning | str, category: type[Warning], filename: str, lineno: int,
               file: object = None, line: str | None = None) -> None:
    """The package's own warnings (repairs, left-out inputs) as one plain line each."""
    if issubclass(category, DataWarning):
        print(f"lstm-backtest: note: {message}", file=sys.stderr, flush=True)
    else:
        print(warnings.formatwarning(message, category, filename, lineno, line).rstrip(),
              file=sys.stderr, flush=True)


def _stopped(args: argparse.Namespace) -> str:
    """What a stop left: nothing for a run; the journal for a paper run."""
    if args.command == "paper":
        return (f"the journal in {args.out} holds every finished bar; the same command "
                f"resumes.")
    return "no run folder was written."


def entry() -> None:
    """The console script and `python -m lstm_strategy`: `main()`, then the exit.

    Everything a command writes is complete when `main` returns (run folders and reports
    appear by rename, ledgers commit each row), so the process ends as Python's own exit
    would, in its order (non-daemon threads joined, then the atexit handlers: Ray's
    shutdown, multiprocessing's children, logging), but without tearing down every
    module and object, which cost 1.2-1.5 s after a run (torch's most of all). Under a
    profiler or a tracer (coverage) it exits the normal way, so they write their files.
    """
    code = main()
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)  # cProfile and coverage write their files at the normal exit
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`| head`) has nothing left to take
            pass
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    main_thread = threading.current_thread() is threading.main_thread()
    shown = warnings.showwarning
    warnings.showwarning = _show_note
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None  # like Ctrl-C
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return {"check": _check, "sweep": _sweep, "compare": _compare,
                    "audit": _audit, "paper": _paper, "report": _report}.get(
                args.command, _run)(args)
    except BAD_INPUT as exc:
        if args.debug:
            raise
        print(f"lstm-backtest: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Terminated:
        print(f"lstm-backtest: terminated (SIGTERM); {_stopped(args)}", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print(f"lstm-backtest: interrupted; {_stopped(args)}", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = shown
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
