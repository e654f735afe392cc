"""The run ledger: one SQLite row per clip, so a re-run resumes where the last one stopped.

A clip counts as done only when its outputs were renamed into place *and* its row says
``done`` with the same input hash and parameter hash; anything else is redone.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS clips (
    relpath     TEXT PRIMARY KEY,
    source      TEXT NOT NULL,
    input_hash  TEXT,
    params_hash TEXT NOT NULL,
    status      TEXT NOT NULL,       -- queued | running | done | failed
    reason      TEXT,
    frames      INTEGER,
    seconds     REAL,
    updated     REAL NOT NULL,
    crashes     INTEGER NOT NULL DEFAULT 0  -- runs that died (no clean-up) while this clip was running
);
"""


@dataclass(frozen=True)
class LedgerRow:
    relpath: str
    source: str
    input_hash: str | None
    params_hash: str
    status: str
    reason: str | None
    frames: int | None
    seconds: float | None

    def done_with(self, input_hash: str, params_hash: str) -> bool:
        """Done, from this input and with these parameters."""
        return self.status == "done" and self.input_hash == input_hash and self.params_hash == params_hash


class Ledger:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(clips)")}
        if "crashes" not in columns:  # a ledger written by an older privvid
            self._db.execute("ALTER TABLE clips ADD COLUMN crashes INTEGER NOT NULL DEFAULT 0")

    def get(self, relpath: str) -> LedgerRow | None:
        row = self._db.execute(
            "SELECT relpath, source, input_hash, params_hash, status, reason, frames, seconds "
            "FROM clips WHERE relpath = ?", (relpath,)
        ).fetchone()
        return LedgerRow(*row) if row else None

    def mark(self, relpath: str, source: str, params_hash: str, status: str, *, input_hash: str | None = None,
             reason: str | None = None, frames: int | None = None, seconds: float | None = None) -> None:
        self._db.execute(
            "INSERT INTO clips (relpath, source, input_hash, params_hash, status, reason, frames, seconds, updated)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(relpath) DO UPDATE SET source=excluded.source,"
            " input_hash=excluded.input_hash, params_hash=excluded.params_hash, status=excluded.status,"
            " reason=excluded.reason, frames=excluded.frames, seconds=excluded.seconds, updated=excluded.updated,"
            " crashes=CASE WHEN excluded.status = 'done' THEN 0 ELSE clips.crashes END",
            (relpath, source, input_hash, params_hash, status, reason, frames, seconds, time.time()),
        )

    def relpaths(self, status: str) -> list[str]:
        return [r for (r,) in self._db.execute("SELECT relpath FROM clips WHERE status = ? ORDER BY relpath", (status,))]

    def set_status(self, relpath: str, status: str) -> None:
        self._db.execute("UPDATE clips SET status = ?, updated = ? WHERE relpath = ?", (status, time.time(), relpath))

    def crashed(self, relpath: str) -> int:
        """Count one more run that died while ``relpath`` was running; return how many have."""
        self._db.execute("UPDATE clips SET crashes = crashes + 1 WHERE relpath = ?", (relpath,))
        row = self._db.execute("SELECT crashes FROM clips WHERE relpath = ?", (relpath,)).fetchone()
        return int(row[0]) if row else 0

    def crashes(self, relpath: str) -> int:
        row = self._db.execute("SELECT crashes FROM clips WHERE relpath = ?", (relpath,)).fetchone()
        return int(row[0]) if row else 0

    def params_in_use(self) -> dict[str, int]:
        """params_hash -> number of clips done with it."""
        return dict(self._db.execute("SELECT params_hash, COUNT(*) FROM clips WHERE status = 'done' "
                                     "GROUP BY params_hash").fetchall())

    def close(self) -> None:
        self._db.close()
