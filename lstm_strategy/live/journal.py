"""The paper runner's journal: every bar, its feature row's hash, forecast, decision,
orders, fills, model swaps and the account, in SQLite (WAL), one transaction per bar.

A bar is in the journal whole or not at all, so a runner killed at any moment leaves a
journal that ends at the last bar it finished. Resuming replays the journaled bars
through the same code and checks each step against the journal (`Journal.step` in
verify mode) before it writes anything new: an order is journaled once, with its bar.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from pathlib import Path

import pandas as pd

from ..errors import DataError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS bars (seq INTEGER, ticker TEXT, date TEXT, open REAL, high REAL,
    low REAL, close REAL, volume REAL, status TEXT, row_hash TEXT, forecast REAL,
    target REAL, PRIMARY KEY (seq, ticker));
CREATE TABLE IF NOT EXISTS orders (seq INTEGER, n INTEGER, ticker TEXT, side TEXT,
    size REAL, price REAL, PRIMARY KEY (seq, n));
CREATE TABLE IF NOT EXISTS fills (seq INTEGER, n INTEGER, ticker TEXT, side TEXT, size REAL,
    price REAL, commission REAL, PRIMARY KEY (seq, n));
CREATE TABLE IF NOT EXISTS account (seq INTEGER PRIMARY KEY, date TEXT, value REAL, cash REAL);
CREATE TABLE IF NOT EXISTS events (seq INTEGER, n INTEGER, kind TEXT, details TEXT,
    PRIMARY KEY (seq, n));
"""
TABLES = ("bars", "orders", "fills", "account", "events")


class RunnerBusy(DataError):
    """Another paper runner holds this run folder."""


class JournalMismatch(DataError):
    """A resumed run's replay differs from what the journal holds."""


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True  # NaN journaled as NULL reads back as None; both kinds are "no value"
    return a == b


def _norm(row: tuple) -> tuple:
    return tuple(float("nan") if v is None else v for v in row)


class Journal:
    """One run folder's journal (`journal.sqlite`), held by one runner at a time."""

    def __init__(self, folder: str | Path, meta: dict) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.folder / "runner.lock", "a+")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise RunnerBusy(f"{self.folder}: another paper runner is using this folder "
                             f"(runner.lock); stop it first, or give another --out.") from None
        self._lock.seek(0)
        self._lock.truncate()
        self._lock.write(str(os.getpid()))
        self._lock.flush()
        self.path = self.folder / "journal.sqlite"
        self.db = sqlite3.connect(self.path, isolation_level=None)
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
            saved = dict(self.db.execute("SELECT key, value FROM meta"))
        except sqlite3.DatabaseError as exc:
            self.close()
            raise DataError(f"{self.path}: not a paper run's journal ({exc}); it is left "
                            f"as it is. Give another --out, or move the file away if it "
                            f"is not needed.") from None
        if saved:
            for key, value in meta.items():
                if key in saved and saved[key] != str(value):
                    self.close()
                    raise DataError(f"{self.path}: this run was started with {key} "
                                    f"{saved[key]!r}, not {str(value)!r}; resume it with the "
                                    f"same command, or give another --out.")
        else:
            self.db.executemany("INSERT INTO meta VALUES (?, ?)",
                                [(k, str(v)) for k, v in meta.items()])
        self.last_seq = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM account").fetchone()[0]
        self._journaled = {t: self._load(t) for t in TABLES} if self.last_seq else {}

    def _load(self, table: str) -> dict[int, list[tuple]]:
        out: dict[int, list[tuple]] = {}
        for row in self.db.execute(f"SELECT * FROM {table} ORDER BY seq"):
            out.setdefault(row[0], []).append(_norm(row[1:]))
        return out

    def bars(self, ticker: str) -> list[tuple[tuple, str]]:
        """The journaled bars of a ticker with the feed status each had, in order (what a
        resumed run replays first)."""
        return [((pd.Timestamp(r[0]), *r[1:6]), r[6]) for r in self.db.execute(
            "SELECT date, open, high, low, close, volume, status FROM bars WHERE ticker = ? "
            "ORDER BY seq", (ticker,))]

    def step(self, seq: int, rows: dict[str, list[tuple]]) -> None:
        """One bar's rows by table: checked against the journal when it already holds this
        bar (a resumed run), else written in one transaction."""
        if seq <= self.last_seq:
            for table in TABLES:
                want = self._journaled[table].get(seq, [])
                got = [_norm(tuple(r)) for r in rows.get(table, [])]
                if table == "events":  # timing words may differ on a replay; kinds may not
                    want = [w[:2] for w in want]
                    got = [g[:2] for g in got]
                if len(want) != len(got) or not all(
                        all(_same(a, b) for a, b in zip(w, g, strict=True))
                        for w, g in zip(want, got, strict=True)):
                    raise JournalMismatch(
                        f"{self.path}: bar {seq} replays differently from the journal in "
                        f"'{table}': journaled {want}, now {got}. The inputs, config or code "
                        f"changed since the run started; start a new --out folder.")
            return
        cur = self.db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            for table, values in rows.items():
                if values:
                    marks = ", ".join("?" * (len(values[0]) + 1))
                    cur.executemany(f"INSERT INTO {table} VALUES ({marks})",
                                    [(seq, *v) for v in values])
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        self.last_seq = seq

    def frame(self, table: str) -> pd.DataFrame:
        """A journal table as a frame."""
        return pd.read_sql_query(f"SELECT * FROM {table} ORDER BY seq", self.db)

    def events(self) -> list[tuple[int, str, dict]]:
        return [(s, k, json.loads(d)) for s, _, k, d in self.db.execute(
            "SELECT * FROM events ORDER BY seq, n")]

    def close(self) -> None:
        self.db.close()
        fcntl.flock(self._lock, fcntl.LOCK_UN)
        self._lock.close()
