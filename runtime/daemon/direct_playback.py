"""Drive an Amplifier and an AudioSink around one playback (used when device.playback's sequencer is absent).

Order: power on → zones → emergency → volume → unmute → audio … → drain (or abort on cancel) → mute → emergency off.
The amplifier is made safe (muted) whatever happens.
"""

from __future__ import annotations

import logging
import threading
from typing import Iterable, Optional, Sequence

import numpy as np

from runtime.synth.synthesizer import AudioChunk

_LOGGER = logging.getLogger(__name__)


class DirectPlayback:
    def __init__(self, amplifier, sink, sample_rate_hz: int):
        self.amplifier = amplifier
        self.sink = sink
        self.sample_rate_hz = sample_rate_hz
        self._opened = False

    def play(
        self,
        chunks: Iterable[AudioChunk],
        *,
        emergency: bool,
        zones: Sequence[int],
        volume_pct: int,
        cancel: Optional[threading.Event] = None,
    ) -> bool:
        """Play until the chunks end (True) or `cancel` is set (False, buffered audio dropped)."""
        if not self._opened:
            self.sink.open(self.sample_rate_hz)
            self._opened = True
        amplifier = self.amplifier
        amplifier.power_on()
        try:
            amplifier.set_zones(list(zones))
            amplifier.set_emergency(emergency)
            amplifier.set_volume(volume_pct)
            amplifier.unmute()
            for chunk in chunks:
                if cancel is not None and cancel.is_set():
                    self.sink.abort()
                    return False
                self.sink.write(np.asarray(chunk.samples, dtype=np.float32))
            if cancel is not None and cancel.is_set():
                self.sink.abort()
                return False
            self.sink.drain()
            return True
        finally:
            try:
                amplifier.mute()
            finally:
                if emergency:
                    amplifier.set_emergency(False)

    def close(self) -> None:
        if self._opened:
            self.sink.close()
            self._opened = False
