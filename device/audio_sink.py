"""The `AudioSink` capability: where played audio goes (ALSA, a WAV file, nowhere)."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class AudioSink(Protocol):
    """A long-lived audio output. `write` blocks while its bounded buffer is full; `abort` drops buffered audio at once."""

    def open(self, sample_rate_hz: int) -> None: ...

    def write(self, samples: np.ndarray) -> None: ...

    def drain(self) -> None: ...

    def abort(self) -> None: ...

    def close(self) -> None: ...
