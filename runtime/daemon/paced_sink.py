"""`PacedSink`: make a WAV or null sink take real time, as a sound card does (the demo and the tests use it)."""

from __future__ import annotations

import threading
import time
from typing import Optional

import numpy as np


class PacedSink:
    """Wraps an AudioSink so `write` returns when the audio would have played (minus `lead_s` of buffer).

    Waiting uses an Event, so `abort` (from any thread) wakes a waiting `write` at once: pre-emption behaves as it
    would on ALSA.
    """

    def __init__(self, sink, *, lead_s: float = 0.1):
        self.sink = sink
        self.lead_s = lead_s
        self._rate = 1
        self._started: Optional[float] = None
        self._queued_s = 0.0
        self._abort = threading.Event()

    def open(self, sample_rate_hz: int) -> None:
        self._rate = int(sample_rate_hz)
        self._abort.clear()
        self._started, self._queued_s = None, 0.0
        self.sink.open(sample_rate_hz)

    def write(self, samples: np.ndarray) -> None:
        if self._abort.is_set():
            return
        now = time.monotonic()
        if self._started is None or now > self._started + self._queued_s:
            self._started, self._queued_s = now, 0.0
        self.sink.write(samples)
        self._queued_s += len(samples) / self._rate
        ahead = self._started + self._queued_s - now - self.lead_s
        if ahead > 0:
            self._abort.wait(ahead)

    def drain(self) -> None:
        if self._started is not None and not self._abort.is_set():
            remaining = self._started + self._queued_s - time.monotonic()
            if remaining > 0:
                self._abort.wait(remaining)
        self._started, self._queued_s = None, 0.0
        self.sink.drain()

    def abort(self) -> None:
        self._abort.set()
        self.sink.abort()

    def close(self) -> None:
        self.sink.close()
