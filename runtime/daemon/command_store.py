"""The durable command queue: SQLite in WAL mode. A command is acknowledged `queued` only after it is committed here.

Rows outlive their playback so that an id seen once is recognised as a duplicate across restarts
(QoS 1 redelivery, operator re-sends) for `retention_s`.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Final, Optional

_LOGGER = logging.getLogger(__name__)

QUEUED: Final = "queued"
PLAYING: Final = "playing"
DONE: Final = "done"
EXPIRED: Final = "expired"
CANCELLED: Final = "cancelled"
PREEMPTED: Final = "preempted"
FAILED: Final = "failed"
REJECTED: Final = "rejected"  # stored first, refused later (a voice pack that fails verification)
PENDING_STATES: Final = (QUEUED, PLAYING)
STATES: Final = (QUEUED, PLAYING, DONE, EXPIRED, CANCELLED, PREEMPTED, FAILED, REJECTED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS commands (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    payload BLOB NOT NULL,
    received_at REAL NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS commands_state ON commands(state);
"""


@dataclass(frozen=True)
class StoredCommand:
    seq: int
    id: str
    kind: str
    payload: bytes
    received_at: float
    state: str
    reason: Optional[str]


class CommandStore:
    """One SQLite file; safe to call from the MQTT thread and the worker (one connection behind a lock)."""

    def __init__(self, path: str | os.PathLike, *, retention_s: float = 7 * 86400.0, clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self.prune(retention_s)

    def add(self, command_id: str, kind: str, payload: bytes) -> bool:
        """Store a new command as queued; False when the id is already known (a duplicate)."""
        now = self._clock()
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO commands (id, kind, payload, received_at, state, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                (command_id, kind, payload, now, QUEUED, now),
            )
            return cursor.rowcount == 1

    def set_state(self, command_id: str, state: str, reason: Optional[str] = None) -> None:
        if state not in STATES:
            raise ValueError(f"unknown command state {state!r}")
        with self._lock:
            self._db.execute(
                "UPDATE commands SET state = ?, reason = ?, updated_at = ? WHERE id = ?",
                (state, reason, self._clock(), command_id),
            )

    def get(self, command_id: str) -> Optional[StoredCommand]:
        with self._lock:
            row = self._db.execute(
                "SELECT seq, id, kind, payload, received_at, state, reason FROM commands WHERE id = ?", (command_id,)
            ).fetchone()
        return StoredCommand(*row) if row else None

    def pending(self) -> list[StoredCommand]:
        """Commands not yet finished (queued, or playing when the daemon stopped), oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, id, kind, payload, received_at, state, reason FROM commands WHERE state IN (?, ?) ORDER BY seq",
                PENDING_STATES,
            ).fetchall()
        return [StoredCommand(*row) for row in rows]

    def count(self, state: str) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM commands WHERE state = ?", (state,)).fetchone()[0]

    def prune(self, retention_s: float) -> int:
        """Forget finished commands older than retention_s; return how many."""
        cutoff = self._clock() - retention_s
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM commands WHERE state NOT IN (?, ?) AND updated_at < ?", (*PENDING_STATES, cutoff)
            )
        if cursor.rowcount:
            _LOGGER.info("pruned finished commands count=%d", cursor.rowcount)
        return cursor.rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()
