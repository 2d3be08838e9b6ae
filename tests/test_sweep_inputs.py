"""Bad sweep files, damaged ledgers and a missing extra: one line, exit 2, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lstm_strategy.cli import main

from .conftest import ROOT

GOOD = """\
base: default
vary:
  strategy.entry_threshold: {low: 0.0, high: 0.002, step: 0.001}
search: grid
"""

BAD = {
    "zero step": ("strategy.entry_threshold: {low: 0.0, high: 0.002, step: 0}",
                  "vary.strategy.entry_threshold.step=0 must be > 0"),
    "negative step": ("strategy.entry_threshold: {low: 0.0, high: 0.002, step: -0.001}",
                      "step=-0.001 must be > 0"),
    "low above high": ("strategy.entry_threshold: {low: 0.003, high: 0.002, step: 0.001}",
                       "low=0.003 is above high=0.002; swap them"),
    "log with low 0": ("strategy.entry_threshold: {low: 0.0, high: 0.002, log: true}",
                       "log: true needs low > 0"),
    "unknown type": ("strategy.entry_threshold: {low: 0.0, high: 0.002, type: decimal}",
                     "type='decimal'; use int or float"),
    "non-numeric low": ("strategy.entry_threshold: {low: zero, high: 0.002}",
                        "low='zero' must be a number"),
}
TOP = {
    "vary as a list": ("base: default\nvary:\n  - strategy.entry_threshold\n",
                       "vary must be a mapping"),
    "set as a list": (GOOD + "set:\n  - train.epochs: 5\n", "set must be a mapping"),
    "trials as a word": (GOOD + "trials: ten\n", "trials='ten' must be a whole number"),
    "holdout as a word": (GOOD + "holdout: quarter\n", "holdout='quarter' must be a number"),
    "yaml error": (GOOD + "objective: [sharpe\n", "not valid YAML (line "),
    "zero trials": (GOOD + "trials: 0\n", "trials=0 must be >= 1"),
}


def _refused(tmp_path: Path, text: str, fragment: str, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    out = tmp_path / "sweep"
    assert main(["sweep", "--config", str(path), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert str(path) in err and fragment in err, err
    assert not out.exists()  # nothing written: the corrected sweep starts clean


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_range_is_one_line_and_writes_nothing(tmp_path: Path, case: str,
                                                     capsys: pytest.CaptureFixture) -> None:
    line, fragment = BAD[case]
    _refused(tmp_path, f"base: default\nvary:\n  {line}\n", fragment, capsys)


@pytest.mark.parametrize("case", sorted(TOP))
def test_a_bad_sweep_file_is_one_line_and_writes_nothing(tmp_path: Path, case: str,
                                                          capsys: pytest.CaptureFixture) -> None:
    text, fragment = TOP[case]
    _refused(tmp_path, text, fragment, capsys)


@pytest.mark.parametrize("damage", ["truncated", "overwritten", "empty", "not sqlite"])
def test_a_damaged_ledger_is_named_and_kept(tmp_path: Path, damage: str,
                                            capsys: pytest.CaptureFixture) -> None:
    import sqlite3

    folder = tmp_path / "sweep"
    folder.mkdir()
    ledger = folder / "study.db"
    with sqlite3.connect(ledger) as db:  # a real SQLite file with Optuna's trials table
        db.execute("CREATE TABLE trials (trial_id INTEGER PRIMARY KEY, number INTEGER)")
        db.executemany("INSERT INTO trials (number) VALUES (?)", [(i,) for i in range(2000)])
    whole = ledger.read_bytes()
    (folder / "results.csv").write_text("trial,status\n0,COMPLETE\n")
    ledger.write_bytes({"truncated": whole[:len(whole) // 3], "empty": b"",
                        "overwritten": b"\x00" * len(whole),
                        "not sqlite": b"trial,status\n0,COMPLETE\n"}[damage])
    before = ledger.read_bytes()
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    assert main(["sweep", "--config", str(path), "--out", str(folder), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert str(ledger) in err and "to start the sweep over" in err and "results.csv" in err
    assert ledger.read_bytes() == before  # nothing touched
    assert (folder / "results.csv").read_text() == "trial,status\n0,COMPLETE\n"


def test_without_the_sweep_extra_the_command_names_it(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    code = ("import sys; sys.modules['optuna'] = None; from lstm_strategy.cli import main; "
            f"sys.exit(main(['sweep', '--config', 'sweep_example', '--out', {str(out)!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "pip install 'lstm-strategy[sweep]'" in done.stderr
    assert "Traceback" not in done.stderr and not out.exists()


def test_ready_sweeps_resolve_by_name(tmp_path: Path) -> None:
    from lstm_strategy.sweep import load_sweep

    config = load_sweep("sweep_example")
    assert Path(config.base_dir) == (ROOT / "strategies")
    assert config.experiment({}).name == "default"


def test_ranges_from_python_are_checked_too() -> None:
    from lstm_strategy import ConfigError
    from lstm_strategy.sweep import Range

    for bad in (dict(low=0.0, high=1.0, step=0.0), dict(low=2.0, high=1.0),
                dict(low=0.0, high=1.0, log=True)):
        with pytest.raises(ConfigError, match="Range: "):
            Range(**bad)
