"""A normal install works: build the wheel, install it apart from the source, run from an empty folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd

from .conftest import ROOT, tiny_overrides

SOURCES = ("lstm_strategy", "data", "strategies", "setup.py", "setup.cfg", "pyproject.toml",
           "MANIFEST.in", "README.md")


def test_the_wheel_runs_the_default_experiment_from_an_empty_folder(tmp_path: Path) -> None:
    source = tmp_path / "src"
    for name in SOURCES:  # build from a copy: building writes build/ and egg-info beside it
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "sp32"))
        else:
            shutil.copy2(ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels), str(source)], check=True, capture_output=True)
    wheel = next(wheels.glob("lstm_strategy-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.split("/")[0] == "strategies"]  # no top-level package
    for shipped in ("data/AAPL.csv", "data/macro_us_daily.csv", "data/PROVENANCE.md",
                    "strategies/default.yaml", "strategies/lstm_long_short.yaml"):
        assert f"lstm_strategy/_shipped/{shipped}" in names
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(site), str(wheel)], check=True, capture_output=True)
    empty = tmp_path / "empty"
    (empty / "strategies").mkdir(parents=True)  # a user's own strategies/ package, as is common
    (empty / "strategies" / "__init__.py").write_text("MINE = True\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-c", "import lstm_strategy; print(lstm_strategy."
                            "__file__)"], cwd=empty, env=env, capture_output=True, text=True,
                           check=True).stdout
    assert where.startswith(str(site))
    args = [sys.executable, "-m", "lstm_strategy", "run", "--quiet", "--device", "cpu",
            "--out", "run"]
    for item in tiny_overrides():
        args += ["--set", item]
    run = subprocess.run(args, cwd=empty, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    # the process ends without the interpreter's teardown (cli.entry): all it wrote and
    # printed is whole
    folder = empty / "run"
    assert folder.joinpath("report.html").read_text().rstrip().endswith("</html>")
    assert json.loads(folder.joinpath("metrics.json").read_text())["strategy"]
    for csv in folder.glob("*.csv"):
        pd.read_csv(csv)
    assert run.stdout.rstrip().splitlines()[-1] == f"report: {Path('run') / 'report.html'}"
    assert "data/AAPL.csv" in (empty / "run" / "config.yaml").read_text()
    ready = subprocess.run([*args[:3], "check", "--config", "lstm_long_short"], cwd=empty,
                           env=env, capture_output=True, text=True)
    assert ready.returncode == 0 and "MSFT" in ready.stdout, ready.stderr[-2000:]
