"""Fixtures shared by every test folder. Peer fixtures (broker, pty amplifier, tiny bundle) live in the folders' own conftest."""

from __future__ import annotations

import threading

import pytest


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """Fail a test that leaves threads running (pymodbus's system_health_check, in spirit)."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]
    for thread in leaked:
        thread.join(timeout=5.0)
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"test leaked non-daemon threads: {still}"
