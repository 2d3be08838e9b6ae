"""Whether a process that left something behind (a temp folder, a lock) is still running."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists (someone else's counts; an impossible pid not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return pid < 2**22  # exists but is someone else's (or is not a pid at all)
    return True
