"""Build hook: copy the sample data and ready configs into the package (lstm_strategy/_shipped).

Metadata lives in setup.cfg. data/ and strategies/ stay top-level folders of the project
(not importable packages); an installed wheel needs their files inside the package so
that `lstm-backtest run` works from any folder (read with importlib.resources).
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = {"data": ("*.csv", "*.md"), "data/sp32": ("*.csv",), "strategies": ("*.yaml",)}


class BuildWithShippedFiles(build_py):
    """build_py, plus the shipped files copied under lstm_strategy/_shipped/."""

    def run(self) -> None:
        super().run()
        for folder, patterns in SHIPPED.items():
            target = Path(self.build_lib) / "lstm_strategy" / "_shipped" / folder
            target.mkdir(parents=True, exist_ok=True)
            for pattern in patterns:
                for source in sorted((ROOT / folder).glob(pattern)):
                    shutil.copy2(source, target / source.name)


setup(cmdclass={"build_py": BuildWithShippedFiles})
