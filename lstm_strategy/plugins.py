"""Code a user names in a config: a class or function by "module:name" or "file.py:name".

Qlib names any pluggable part by class and module path; here one string does it, for
models (`model.class`) and features (`features.extra`). Torch-free, so features can use it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import types
from pathlib import Path

from .errors import ConfigError

USER_MODULE_PREFIX = "_lstm_strategy_user_"  # modules loaded from a file path


def _import_module(name: str, where: str) -> types.ModuleType:
    """A module by dotted name (also from the current folder, as `python -m` would see it)
    or by file path ("models/my_gru.py", loaded once per file)."""
    if name.endswith(".py"):
        path = Path(name).resolve()
        if not path.is_file():
            raise ConfigError(f"{where}: no file {name} (from {Path.cwd()}).")
        module_name = USER_MODULE_PREFIX + hashlib.sha256(str(path).encode()).hexdigest()[:12]
        if module_name in sys.modules:
            return sys.modules[module_name]
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[module_name]
            raise ConfigError(f"{where}: importing {name} failed: {type(exc).__name__}: "
                              f"{exc}") from exc
        return module
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name.split(".")[0] or str(Path.cwd()) in sys.path:
            raise ConfigError(f"{where}: cannot import {name} ({exc}).") from exc
    sys.path.append(str(Path.cwd()))
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"{where}: cannot import {name} ({exc}); install the package, run "
                          f"from the folder that holds it, or name a file: "
                          f"path/to/module.py:Name.") from exc
    except Exception as exc:
        raise ConfigError(f"{where}: importing {name} failed: {type(exc).__name__}: "
                          f"{exc}") from exc


def import_object(spec: str, where: str) -> object:
    """The object a "module:name" (or "file.py:name") string names; ConfigError if not."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{where}={spec!r}: write module:Name (e.g. mypkg.models:MyGRU) or "
                          f"path/to/file.py:Name.")
    module = _import_module(module_name, f"{where}={spec!r}")
    found: object = module
    for part in attr.split("."):
        if not hasattr(found, part):
            raise ConfigError(f"{where}={spec!r}: {module_name} has no {attr!r}.")
        found = getattr(found, part)
    return found
