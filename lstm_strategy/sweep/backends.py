"""Where sweep tasks run: local worker processes (the default) or a Ray cluster.

Both offer the same three calls, so the driver does not care which it has: `submit(fn,
*args)` returns a handle, `wait(handles)` returns those that are done, `result(handle)`
returns the task's value or raises its error. Every worker steps torch on one thread.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor


def _worker_init() -> None:
    """One torch thread per worker process (see BENCHMARKS.md: threads)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)


def start_method() -> str:
    """fork where it is safe (Linux without a CUDA GPU): workers start at once with the
    imports done; spawn elsewhere. On a machine with a GPU a forked child can use neither
    CUDA once this process has, nor autograd once this process has run a backward pass,
    even on the CPU (autograd then runs a thread per GPU; seen on an H200 machine);
    macOS forbids fork."""
    import torch

    if sys.platform.startswith("linux") and not torch.cuda.is_available():
        return "fork"
    return "spawn"


class LocalBackend:
    """`workers` processes on this machine; with one worker, tasks run in this process, one
    per `wait` in the order submitted (so results, progress and ledger commits come as
    each task ends, as they do with a pool)."""

    name = "local"

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        self._queued: dict[Future, tuple[Callable, tuple]] = {}
        self._finished: queue.SimpleQueue = queue.SimpleQueue()  # pool futures as they end
        self._ready: list[Future] = []  # ended, not yet handed to a wait that asked for them
        self._pool = None
        if workers > 1:
            self._pool = ProcessPoolExecutor(max_workers=workers, initializer=_worker_init,
                                             mp_context=multiprocessing.get_context(
                                                 start_method()))

    def submit(self, fn: Callable, *args: object) -> Future:
        if self._pool is not None:
            future = self._pool.submit(fn, *args)
            future.add_done_callback(self._finished.put)  # no scan of every handle per wait
            return future
        future: Future = Future()
        self._queued[future] = (fn, args)
        return future

    def wait(self, handles: Sequence[Future]) -> list[Future]:
        wanted = set(handles)
        if self._pool is not None:
            ready = [h for h in self._ready if h in wanted]
            if not ready:
                ready = [self._finished.get()]
            while not self._finished.empty():
                ready.append(self._finished.get())
            self._ready = [h for h in dict.fromkeys(self._ready + ready) if h not in wanted]
            return [h for h in dict.fromkeys(ready) if h in wanted]
        future = next(h for h in self._queued if h in wanted)
        self._run(future)
        return [future]

    def _run(self, future: Future) -> None:
        fn, args = self._queued.pop(future)
        try:
            future.set_result(fn(*args))
        except Exception as exc:  # the task's own error, raised again by result()
            future.set_exception(exc)

    def result(self, handle: Future) -> object:
        if handle in self._queued:  # in-process and not waited for: run it now
            self._run(handle)
        return handle.result()

    def close(self, cancel: bool = False) -> None:
        self._queued.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=not cancel, cancel_futures=cancel)


class RayBackend:
    """Tasks on a Ray cluster (`address`), or on a local Ray started for this sweep."""

    name = "ray"

    def __init__(self, workers: int = 1, address: str | None = None) -> None:
        try:
            import ray
        except ImportError as exc:  # an optional extra
            from ..errors import ConfigError
            raise ConfigError("backend=ray needs Ray: pip install 'lstm-strategy[ray]'.") from exc
        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            options = {"address": address} if address else {
                "num_cpus": workers, "include_dashboard": False}
            ray.init(**options, logging_level="ERROR", log_to_driver=False,
                     runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
        self._remote: dict[Callable, object] = {}

    def submit(self, fn: Callable, *args: object) -> object:
        if fn not in self._remote:
            self._remote[fn] = self._ray.remote(num_cpus=1)(fn)
        return self._remote[fn].remote(*args)

    def wait(self, handles: Sequence[object]) -> list[object]:
        done, _ = self._ray.wait(list(handles), num_returns=1)
        return done

    def result(self, handle: object) -> object:
        try:
            return self._ray.get(handle)
        except self._ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            raise (cause if isinstance(cause, Exception) else RuntimeError(str(exc))) from None

    def close(self, cancel: bool = False) -> None:
        if self._started:
            self._ray.shutdown()


def make_backend(name: str, workers: int, address: str | None = None
                 ) -> LocalBackend | RayBackend:
    return RayBackend(workers, address) if name == "ray" else LocalBackend(workers)
