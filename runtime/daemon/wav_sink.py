"""A minimal AudioSink writing one WAV file (used when device.sinks is absent); the header is synced after each drain."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Optional

import numpy as np
import soundfile


class AppendingWavSink:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._file: Optional[soundfile.SoundFile] = None
        self._lock = threading.Lock()
        self.samples_written = 0

    def open(self, sample_rate_hz: int) -> None:
        with self._lock:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = soundfile.SoundFile(str(self.path), "w", samplerate=sample_rate_hz, channels=1, subtype="PCM_16")

    def write(self, samples: np.ndarray) -> None:
        with self._lock:
            if self._file is not None:
                self._file.write(np.clip(samples, -1.0, 1.0))
                self.samples_written += len(samples)

    def drain(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.flush()

    def abort(self) -> None:
        self.drain()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class NullAudioSink:
    def open(self, sample_rate_hz: int) -> None: ...

    def write(self, samples: np.ndarray) -> None: ...

    def drain(self) -> None: ...

    def abort(self) -> None: ...

    def close(self) -> None: ...


class NoAmplifier:
    """Stands in for device.null_amplifier.NullAmplifier when the device layer is absent: every call succeeds."""

    def power_on(self) -> None: ...

    def standby(self) -> None: ...

    def set_zones(self, zones) -> None: ...

    def set_volume(self, volume_pct: int) -> None: ...

    def set_emergency(self, enabled: bool) -> None: ...

    def mute(self) -> None: ...

    def unmute(self) -> None: ...

    def close(self) -> None: ...


class PacedSink:
    """Wraps a sink so writes take real time, as a sound card's do (the WAV sink alone runs at CPU speed).

    Waiting uses an Event, so `abort` returns at once: pre-emption behaves as it would on ALSA.
    """

    def __init__(self, sink, *, lead_s: float = 0.1):
        self.sink = sink
        self.lead_s = lead_s
        self._rate = 1
        self._started: Optional[float] = None
        self._queued_s = 0.0
        self._abort = threading.Event()

    def open(self, sample_rate_hz: int) -> None:
        self._rate = sample_rate_hz
        self.sink.open(sample_rate_hz)

    def write(self, samples: np.ndarray) -> None:
        now = time.monotonic()
        if self._started is None or now > self._started + self._queued_s:
            self._started, self._queued_s = now, 0.0
        self.sink.write(samples)
        self._queued_s += len(samples) / self._rate
        ahead = self._started + self._queued_s - now - self.lead_s
        if ahead > 0:
            self._abort.wait(ahead)
        self._abort.clear()

    def drain(self) -> None:
        if self._started is not None:
            remaining = self._started + self._queued_s - time.monotonic()
            if remaining > 0:
                self._abort.wait(remaining)
        self._abort.clear()
        self._started, self._queued_s = None, 0.0
        self.sink.drain()

    def abort(self) -> None:
        self._abort.set()
        self._started, self._queued_s = None, 0.0
        self.sink.abort()
        self._abort.clear()

    def close(self) -> None:
        self.sink.close()
