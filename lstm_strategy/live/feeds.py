"""Live-style backtrader feeds for the paper runner: bars from a source, one at a time.

A source's `next_bar(timeout)` returns a bar (date, open, high, low, close, volume),
None when none has arrived yet, or END when it is done; its `last_status` says whether
that bar is "LIVE" or "DELAYED" (backfill: history that was there before the run).
`BarFeed` makes any source a backtrader live feed (`islive()`, DELAYED / LIVE /
DISCONNECTED notifications, `_load` returning None while waiting), the way backtrader's
own store feeds (IB, Oanda) behave: LSTMStrategy warms up on DELAYED bars and trades
LIVE ones.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path

import backtrader as bt
import pandas as pd

from ..data import load_ohlcv

END = object()
Bar = tuple  # (pd.Timestamp, open, high, low, close, volume)


def frame_bars(frame: pd.DataFrame) -> list[Bar]:
    """The bars of an OHLCV frame as tuples, in time order."""
    values = frame[["Open", "High", "Low", "Close", "Volume"]].to_numpy(float)
    return [(when, *map(float, row)) for when, row in zip(frame.index, values, strict=True)]


class ReplaySource:
    """A historical frame delivered as a live feed: as fast as possible, or `speed` bars a
    second, every bar LIVE (a replay trades as the backtest does). `after`: skip the bars
    up to that date (a resumed run already has them)."""

    last_status = "LIVE"

    def __init__(self, frame: pd.DataFrame, speed: float | None = None,
                 after: pd.Timestamp | None = None) -> None:
        bars = frame_bars(frame if after is None else frame.loc[frame.index > after])
        self._bars: deque = deque(bars)
        self._gap = 1.0 / speed if speed else 0.0
        self._due = time.monotonic()

    def next_bar(self, timeout: float = 0.0) -> Bar | object | None:
        if not self._bars:
            return END
        wait = self._due - time.monotonic()
        if wait > 0:
            if wait > timeout:
                time.sleep(timeout)
                return None
            time.sleep(wait)
        self._due = max(self._due, time.monotonic()) + self._gap
        return self._bars.popleft()


class TailSource:
    """New rows of a CSV or parquet file that another process appends to, as bars.

    The file is re-read (and validated, as any input) when its size or modification time
    changes; rows after the last bar delivered become bars. A row dated at or before that
    bar, other than the one already delivered, is refused with a message (`refused`).
    `idle`: end after this many seconds without a new row (None: run until stopped).
    The rows there at the start are backfill (DELAYED); appended rows are LIVE.
    """

    def __init__(self, path: str | Path, loader: dict | None = None, *,
                 after: pd.Timestamp | None = None, idle: float | None = None,
                 poll: float = 0.2) -> None:
        self.path, self.loader, self.idle, self.poll = Path(path), dict(loader or {}), idle, poll
        self._last = after
        self._queue: deque = deque()
        self._backfill = 0  # queued bars that were in the file at the start
        self.last_status = "DELAYED"
        self._seen: tuple | None = None
        self._quiet_since = time.monotonic()
        self.refused: list[str] = []
        self._seen_once = False

    def _read(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return
        if (stat.st_size, stat.st_mtime_ns) == self._seen:
            return
        self._seen = (stat.st_size, stat.st_mtime_ns)
        try:
            frame = load_ohlcv(self.path, **self.loader)
        except Exception as exc:  # a half-written last line: read again on the next change
            self.refused.append(f"{self.path}: not readable yet ({exc})")
            self._seen = None
            return
        new = frame if self._last is None else frame.loc[frame.index > self._last]
        if len(new) and self._seen_once is False:
            self._backfill = len(new)
        self._seen_once = True
        if len(new):
            self._queue.extend(frame_bars(new))
            self._last = new.index[-1]
            self._quiet_since = time.monotonic()

    def next_bar(self, timeout: float = 0.0) -> Bar | object | None:
        deadline = time.monotonic() + timeout
        while True:
            if self._queue:
                self.last_status = "DELAYED" if self._backfill > 0 else "LIVE"
                self._backfill -= 1
                return self._queue.popleft()
            self._read()
            if self._queue:
                continue
            if self.idle is not None and time.monotonic() - self._quiet_since > self.idle:
                return END
            if time.monotonic() >= deadline:
                return None
            time.sleep(min(self.poll, max(0.0, deadline - time.monotonic())))


class ChainSource:
    """Bars already journaled first, with the status they had (a resumed run replays
    them), then a live source."""

    def __init__(self, first: Iterable[tuple[Bar, str]], then: object) -> None:
        self._first: deque = deque(first)
        self._then = then
        self.last_status = "LIVE"

    def next_bar(self, timeout: float = 0.0) -> Bar | object | None:
        if self._first:
            bar, self.last_status = self._first.popleft()
            return bar
        bar = self._then.next_bar(timeout)
        self.last_status = getattr(self._then, "last_status", "LIVE")
        return bar


class BarFeed(bt.feed.DataBase):
    """A backtrader live feed over a bar source (see the module's docstring)."""

    params = (("source", None), ("qcheck", 0.05))

    def islive(self) -> bool:
        return True

    def haslivedata(self) -> bool:
        return False

    def start(self) -> None:
        super().start()
        self.delivered = 0
        self.delivered_at = time.perf_counter()

    def _load(self) -> bool | None:
        bar = self.p.source.next_bar(self._qcheck or self.p.qcheck)
        if bar is END:
            self.put_notification(self.DISCONNECTED)
            return False
        if bar is None:
            return None
        status = getattr(self.p.source, "last_status", "LIVE")
        self.put_notification(self.DELAYED if status == "DELAYED" else self.LIVE)
        when, open_, high, low, close, volume = bar
        lines = self.lines
        lines.datetime[0] = bt.date2num(pd.Timestamp(when).to_pydatetime())
        lines.open[0], lines.high[0], lines.low[0], lines.close[0] = open_, high, low, close
        lines.volume[0], lines.openinterest[0] = volume, 0.0
        self.delivered += 1
        self.delivered_at = time.perf_counter()
        return True
