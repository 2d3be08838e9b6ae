"""Files shipped with the package: the sample data (data/) and the ready configs (strategies/).

In a source checkout they are read where they are; an installed wheel carries copies
under lstm_strategy/_shipped/ (setup.py's build step puts them there), so a plain
`pip install` runs the default experiment from any folder.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[1]


def shipped(relative: str | Path) -> Path | None:
    """The shipped file at `relative` ("data/AAPL.csv", "strategies/default.yaml"), or None."""
    relative = Path(relative)
    if relative.is_absolute() or ".." in relative.parts:
        return None
    packaged = resources.files("lstm_strategy").joinpath("_shipped", *relative.parts)
    if packaged.is_file():
        return Path(str(packaged))
    if (SOURCE_ROOT / "pyproject.toml").is_file() and (SOURCE_ROOT / relative).is_file():
        return SOURCE_ROOT / relative
    return None


def configs_dir() -> Path:
    """Where the ready configs are (for messages and `--help`)."""
    default = shipped("strategies/default.yaml")
    return default.parent if default is not None else SOURCE_ROOT / "strategies"


def ready_file(path: str | Path) -> Path | None:
    """The file at `path`, or the ready file of that name shipped in strategies/ (a name
    with or without .yaml), or None."""
    path = Path(path)
    if path.is_file():
        return path
    for candidate in (path, Path("strategies") / path.name,
                      Path("strategies") / f"{path.name}.yaml"):
        ready = shipped(candidate)
        if ready is not None:
            return ready
    return None
