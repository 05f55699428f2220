"""Streaming sample-rate conversion for the sinks: chunk by chunk, continuous across chunk boundaries.

Linear interpolation with a state carried between chunks (the last input sample and the output phase), so
streaming synthesis output resampled in pieces equals the whole signal resampled at once. When downsampling, a
short moving-average pre-filter limits aliasing; speech at 32 kHz to a 48 kHz card (the usual case) only upsamples.
"""

from __future__ import annotations

import numpy as np


class StreamResampler:
    """Convert mono float32 audio from `source_hz` to `target_hz`, one chunk at a time."""

    def __init__(self, source_hz: int, target_hz: int) -> None:
        if source_hz <= 0 or target_hz <= 0:
            raise ValueError(f"sample rates must be positive (got {source_hz} -> {target_hz})")
        self.source_hz = int(source_hz)
        self.target_hz = int(target_hz)
        self._step = self.source_hz / self.target_hz  # input samples per output sample
        self._position = 0.0  # next output position, in input samples, relative to the carried sample
        self._carry = np.zeros(0, dtype=np.float32)  # the last input sample of the previous chunk
        ratio = self.source_hz / self.target_hz
        self._taps = int(np.ceil(ratio)) if ratio > 1.0 else 1
        self._filter_tail = np.zeros(self._taps - 1, dtype=np.float32)

    @property
    def passthrough(self) -> bool:
        return self.source_hz == self.target_hz

    def process(self, chunk: np.ndarray) -> np.ndarray:
        samples = np.asarray(chunk, dtype=np.float32).reshape(-1)
        if self.passthrough or samples.size == 0:
            return samples
        if self._taps > 1:  # moving average before decimation
            padded = np.concatenate([self._filter_tail, samples])
            kernel = np.full(self._taps, 1.0 / self._taps, dtype=np.float32)
            filtered = np.convolve(padded, kernel, mode="valid").astype(np.float32)
            self._filter_tail = padded[-(self._taps - 1):]
            samples = filtered
        signal = np.concatenate([self._carry, samples])
        last = signal.size - 1  # interpolation needs x and x+1 inside `signal`
        if last < 1:
            self._carry = signal
            return np.zeros(0, dtype=np.float32)
        count = int(np.floor((last - self._position) / self._step)) + 1
        if count <= 0:
            positions = np.zeros(0)
        else:
            positions = self._position + self._step * np.arange(count)
            positions = positions[positions < last]
        out = np.interp(positions, np.arange(signal.size), signal).astype(np.float32)
        next_position = (positions[-1] + self._step) if positions.size else self._position
        self._position = next_position - last
        self._carry = signal[-1:]
        return out

    def reset(self) -> None:
        self._position = 0.0
        self._carry = np.zeros(0, dtype=np.float32)
        self._filter_tail = np.zeros(self._taps - 1, dtype=np.float32)


def to_int16_bytes(samples: np.ndarray) -> bytes:
    """float32 in [-1, 1] → little-endian signed 16-bit PCM (clipped)."""
    clipped = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    return (clipped * 32767.0).astype("<i2").tobytes()
