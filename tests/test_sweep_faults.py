"""Faults in a local sweep: a killed worker is replaced and its tasks run again; a killed
driver takes its workers with it. Real processes, real SIGKILLs (Linux /proc)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from lstm_strategy.sweep import load_sweep, sweep

from .conftest import ROOT
from .test_sweep import sweep_file

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(),
                                reason="reads process trees from /proc")


def _children(pid: int) -> list[int]:
    """Live child processes of `pid` (zombies are dead)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _start(config: Path, out: Path, cache: Path) -> subprocess.Popen:
    env = {**os.environ, "LSTM_STRATEGY_CACHE": str(cache)}
    return subprocess.Popen([sys.executable, "-m", "lstm_strategy", "sweep", "--config",
                             str(config), "--out", str(out), "--quiet", "--workers", "2"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _workers(proc: subprocess.Popen, count: int = 2, seconds: float = 60) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        children = _children(proc.pid)
        if len(children) >= count:
            return children
        time.sleep(0.05)
    raise AssertionError(f"the sweep did not start {count} workers "
                         f"(exit {proc.poll()}: {proc.stderr.read() if proc.poll() else ''})")


def test_a_killed_worker_is_replaced_and_every_trial_completes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = sweep_file(tmp_path, engine="backtrader")
    out = tmp_path / "out"
    proc = _start(config, out, tmp_path / "cache")
    first = _workers(proc)
    time.sleep(1.0)  # both workers are training a model now
    os.kill(first[0], signal.SIGKILL)
    try:
        _, err = proc.communicate(timeout=300)  # the driver never hangs
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("the sweep hung after one of its workers was killed") from None
    assert proc.returncode == 0, err
    with sqlite3.connect(out / "study.db") as db:
        states = dict(db.execute("select state, count(*) from trials group by state"))
    table = pd.read_csv(out / "results.csv")
    if states.get("FAIL"):  # a task whose worker died past its retries: the rerun runs it
        monkeypatch.setenv("LSTM_STRATEGY_CACHE", str(tmp_path / "cache"))
        table = sweep(load_sweep(config), out, progress=False).table
    assert sorted(table["trial"].map(int)) == sorted(set(table["trial"].map(int)))
    assert len(table) == 12 and (table["status"] == "COMPLETE").all()
    points = table[["train.seed", "strategy.entry_threshold", "strategy.min_hold_bars"]]
    assert not points.duplicated().any()  # every point exactly once


def test_a_killed_driver_leaves_no_worker_behind(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    config = sweep_file(tmp_path, engine="backtrader")
    out = tmp_path / "out"
    proc = _start(config, out, tmp_path / "cache")
    workers = _workers(proc)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [p for p in workers if _alive(p)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"workers {left} outlived their driver by 10 s"
    monkeypatch.setenv("LSTM_STRATEGY_CACHE", str(tmp_path / "cache"))
    resumed = sweep(load_sweep(config), out, progress=False)  # and the same command resumes
    assert len(resumed.table) == 12 and (resumed.table["status"] == "COMPLETE").all()


def test_worker_lost_past_its_retries_is_rerun_on_resume(tmp_path: Path) -> None:
    """A task that kills its worker every time fails as infrastructure, not as a trial's
    own error, and the next run runs it again (here it then succeeds)."""
    from lstm_strategy.sweep import backends

    flag = tmp_path / "crash"
    flag.write_text("")
    backend = backends.LocalBackend(workers=2, retries=1)
    try:
        handles = [backend.submit(_crash_while_flagged, str(flag), n) for n in range(4)]
        outcomes = {}
        while len(outcomes) < len(handles):
            for handle in backend.wait([h for h in handles if h not in outcomes]):
                try:
                    outcomes[handle] = backend.result(handle)
                except backends.WorkerLost as exc:
                    outcomes[handle] = exc
        assert all(isinstance(v, backends.WorkerLost) for v in outcomes.values())
        assert backend.replaced >= 1
        flag.unlink()
        again = backend.submit(_crash_while_flagged, str(flag), 7)
        backend.wait([again])
        assert backend.result(again) == 7  # the replaced pool serves new tasks
    finally:
        backend.close(cancel=True)


def _crash_while_flagged(flag: str, value: int) -> int:
    if Path(flag).exists():
        os.kill(os.getpid(), signal.SIGKILL)
    return value
