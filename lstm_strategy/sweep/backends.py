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
from concurrent.futures.process import BrokenProcessPool

from ..processes import worker_init


def start_method() -> str:
    """fork where it is safe (Linux without a CUDA GPU): workers start at once with the
    imports done; spawn elsewhere. On a machine with a GPU a forked child can use neither
    CUDA once this process has, nor autograd once this process has run a backward pass,
    even on the CPU (autograd then runs a thread per GPU; seen on an H200 machine);
    macOS forbids fork. A driver that has not loaded torch has done neither: fork."""
    if not sys.platform.startswith("linux"):
        return "spawn"
    torch = sys.modules.get("torch")
    return "fork" if torch is None or not torch.cuda.is_available() else "spawn"


class WorkerLost(RuntimeError):
    """A task's worker process died (killed, out of memory) more often than it is retried:
    an infrastructure failure, not the task's own error, so a resumed sweep runs it again."""


class LocalBackend:
    """`workers` processes on this machine; with one worker, tasks run in this process, one
    per `wait` in the order submitted (so results, progress and ledger commits come as
    each task ends, as they do with a pool).

    A worker that dies (SIGKILL, out of memory) breaks a process pool and fails every task
    in it; here the pool is replaced and those tasks run again (each up to `retries`
    times, then `WorkerLost`), so one lost worker costs its tasks' time, not the sweep.
    Workers end with the driver (`processes.watch_parent`).
    """

    name = "local"

    def __init__(self, workers: int = 1, retries: int = 2) -> None:
        self.workers, self.retries = workers, retries
        self._queued: dict[Future, tuple[Callable, tuple]] = {}
        self._finished: queue.SimpleQueue = queue.SimpleQueue()  # handles as they end
        self._ready: list[Future] = []  # ended, not yet handed to a wait that asked for them
        self._tasks: dict[Future, list] = {}  # handle -> [fn, args, tries] while in a pool
        self._pool = None
        self.replaced = 0  # pools replaced after a lost worker
        if workers > 1:
            self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.workers, initializer=worker_init,
                                   initargs=(os.getpid(),),
                                   mp_context=multiprocessing.get_context(start_method()))

    def submit(self, fn: Callable, *args: object) -> Future:
        handle: Future = Future()
        if self._pool is not None:
            self._tasks[handle] = [fn, args, 0]
            self._send(handle)
            return handle
        self._queued[handle] = (fn, args)
        return handle

    def _send(self, handle: Future) -> None:
        fn, args, _ = self._tasks[handle]
        pool = self._pool
        try:
            inner = pool.submit(fn, *args)
        except BrokenProcessPool:
            self._finished.put((handle, None, pool))
            return
        inner.add_done_callback(lambda done: self._finished.put((handle, done, pool)))

    def _settle(self, handle: Future, inner: Future | None, pool: object) -> bool:
        """Pass a pool future's outcome to its handle; a lost worker's task goes again.
        True when the handle is done."""
        lost = inner is None or inner.cancelled()  # a pool replaced under it
        error = None if lost else inner.exception()
        if not lost and not isinstance(error, BrokenProcessPool):
            task = self._tasks.pop(handle, None)
            if task is not None:
                if error is None:
                    handle.set_result(inner.result())
                else:
                    handle.set_exception(error)
            return True
        task = self._tasks[handle]
        task[2] += 1
        if task[2] > self.retries:
            del self._tasks[handle]
            handle.set_exception(WorkerLost(
                f"a worker process died {task[2]} times running this task (killed or out "
                f"of memory); the sweep's rerun runs it again"))
            return True
        if pool is self._pool:  # the first news of this break: a fresh pool for the rest
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            self.replaced += 1
        self._send(handle)
        return False

    def wait(self, handles: Sequence[Future]) -> list[Future]:
        wanted = set(handles)
        if self._pool is not None:
            ready = [h for h in self._ready if h in wanted]
            while not ready:
                handle, inner, pool = self._finished.get()
                if self._settle(handle, inner, pool):
                    ready.append(handle)
                    ready += [h for h in self._ready if h in wanted]
            while not self._finished.empty():
                handle, inner, pool = self._finished.get()
                if self._settle(handle, inner, pool):
                    ready.append(handle)
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
        while not handle.done():  # a pool task asked for before its wait
            self.wait([handle])
        return handle.result()

    def close(self, cancel: bool = False) -> None:
        self._queued.clear()
        if self._pool is None:
            return
        if not cancel:
            self._pool.shutdown(wait=True)
            return
        workers = list((getattr(self._pool, "_processes", None) or {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in workers:  # never wait on a task that is still running
            process.kill()
        for process in workers:
            process.join(timeout=5)


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


class LazyBackend:
    """A backend made on the first task submitted, so a run whose folds all come from the
    cache starts no process and no Ray. `close(cancel=True)` on the way out of an error."""

    def __init__(self, name: str, workers: int, address: str | None = None) -> None:
        self._args = (name, workers, address)
        self._backend: LocalBackend | RayBackend | None = None

    def submit(self, fn: Callable, *args: object) -> object:
        if self._backend is None:
            self._backend = make_backend(*self._args)
        return self._backend.submit(fn, *args)

    def wait(self, handles: Sequence[object]) -> list[object]:
        return self._backend.wait(handles)

    def result(self, handle: object) -> object:
        return self._backend.result(handle)

    def close(self, cancel: bool = False) -> None:
        if self._backend is not None:
            self._backend.close(cancel)
            self._backend = None
