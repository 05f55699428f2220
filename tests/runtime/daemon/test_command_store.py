"""The SQLite WAL store: ids are remembered across reopen; unfinished commands come back in order."""

from __future__ import annotations

import sqlite3

from runtime.daemon.command_store import CommandStore


def test_duplicates_are_recognised_across_reopen(tmp_path):
    path = tmp_path / "commands.db"
    store = CommandStore(path)
    assert store.add("a", "speak", b"{}") and store.add("b", "alert", b"{}")
    assert not store.add("a", "speak", b"{}")
    store.set_state("a", "playing")
    store.set_state("b", "done")
    store.close()

    reopened = CommandStore(path)
    assert not reopened.add("b", "alert", b"{}")
    assert [c.id for c in reopened.pending()] == ["a"]
    assert reopened.get("b").state == "done"
    reopened.close()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_finished_commands_are_pruned_after_retention(tmp_path):
    now = [1000.0]
    store = CommandStore(tmp_path / "c.db", clock=lambda: now[0])
    store.add("old", "speak", b"{}")
    store.set_state("old", "done")
    store.add("waiting", "speak", b"{}")
    now[0] += 100
    assert store.prune(50) == 1
    assert store.get("old") is None and store.get("waiting") is not None
    store.close()
