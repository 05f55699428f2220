"""Our own attention chime before alerts: three rising notes (C5 E5 G5). Never the EAS 853 + 960 Hz two-tone."""

from __future__ import annotations

from typing import Final

import numpy as np

CHIME_NOTES_HZ: Final = (523.25, 659.25, 783.99)
NOTE_SECONDS: Final = 0.28
GAP_SECONDS: Final = 0.04
AMPLITUDE: Final = 0.45


def chime(sample_rate_hz: int) -> np.ndarray:
    """The chime as float32 mono samples at `sample_rate_hz` (about one second)."""
    t = np.arange(int(NOTE_SECONDS * sample_rate_hz), dtype=np.float64) / sample_rate_hz
    envelope = np.minimum(1.0, t / 0.01) * np.exp(-t * 6.0)
    gap = np.zeros(int(GAP_SECONDS * sample_rate_hz))
    parts = []
    for frequency in CHIME_NOTES_HZ:
        tone = np.sin(2 * np.pi * frequency * t) + 0.3 * np.sin(4 * np.pi * frequency * t)
        parts.extend([AMPLITUDE * envelope * tone / 1.3, gap])
    return np.concatenate(parts).astype(np.float32)


def silence(seconds: float, sample_rate_hz: int) -> np.ndarray:
    return np.zeros(int(seconds * sample_rate_hz), dtype=np.float32)
