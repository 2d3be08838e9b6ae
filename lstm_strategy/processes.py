"""Processes: whether one that left something behind (a temp folder, a lock) still runs,
and the setup of worker processes that must end with their driver."""

from __future__ import annotations

import os
import sys
import threading
import time

WATCH_SECONDS = 0.5  # how often a worker checks that its driver is still there


def watch_parent(parent: int) -> None:
    """End this worker once its driver is gone (killed, even by SIGKILL): the worker is
    re-parented then, on Linux and macOS alike, so a changed parent pid is the signal."""
    while True:
        time.sleep(WATCH_SECONDS)
        if os.getppid() != parent:
            os._exit(1)


def worker_init(parent: int) -> None:
    """One torch thread per worker process (see BENCHMARKS.md: threads), and a watchdog
    that ends the worker with its driver."""
    os.environ["OMP_NUM_THREADS"] = "1"  # torch, if a task loads it, starts on one thread
    threading.Thread(target=watch_parent, args=(parent,), daemon=True,
                     name="lstm-strategy-driver-watch").start()
    if "torch" in sys.modules:  # forked from a driver that had it
        sys.modules["torch"].set_num_threads(1)


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists (someone else's counts; an impossible pid not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return pid < 2**22  # exists but is someone else's (or is not a pid at all)
    return True
