"""The package's error and warning types, in one place.

Every error a user can cause by their input is a ValueError subclass whose message names
the file, row, column or config key, and the fix. The CLI turns each into exit status 2.
"""

from __future__ import annotations


class DataError(ValueError):
    """Bad input data: the message names the source, the row or column, and the fix."""


class DataWarning(UserWarning):
    """The loader repaired or dropped something and says so."""


class ConfigError(ValueError):
    """A config value that cannot run: the message names the key and that key's own rule."""


class CheckpointError(ValueError):
    """A checkpoint that cannot serve this data or this version of the package."""


class DeviceError(ValueError):
    """A device that was asked for but is not there."""


class LedgerError(ValueError):
    """A sweep ledger (study.db) that cannot be read: the message names it and the way out."""


class RunFolderExists(FileExistsError):
    """The output folder exists and overwriting was not asked for."""


BAD_INPUT = (ConfigError, DataError, CheckpointError, DeviceError, LedgerError,
             RunFolderExists)
