"""Reference audio for voice packs: loading, resampling to 32 kHz and 16 kHz, and the official linear spectrogram.

The resampler is a zero-phase windowed-sinc (Kaiser) polyphase filter evaluated at output times n / rate_out, so
16 kHz sample n and 32 kHz sample 2n describe the same instant (a half-sample shift changes 10–20 % of the prompt
tokens). The spectrogram follows GPT-SoVITS `spectrogram_torch`: reflect-pad (n_fft − hop) / 2 per side,
center=False, periodic Hann, magnitude sqrt(re² + im² + 1e-8).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from typing import Final

import numpy as np

from runtime.errors import ConfigError

_LOGGER = logging.getLogger(__name__)

SOVITS_SAMPLE_RATE_HZ: Final = 32000
HUBERT_SAMPLE_RATE_HZ: Final = 16000
N_FFT: Final = 2048
HOP_LENGTH: Final = 640
WIN_LENGTH: Final = 2048
MAGNITUDE_EPS: Final = 1e-8

_ZERO_CROSSINGS: Final = 32  # filter half-length in zero crossings of the low-pass sinc
_ROLLOFF: Final = 0.95  # cutoff as a fraction of the lower Nyquist frequency
_KAISER_BETA: Final = 9.0
_BLOCK: Final = 16384  # output samples per vectorised block


def load_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read any soundfile format → (mono float32 samples, sample rate); channels are averaged."""
    import soundfile as sf

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError) as exc:  # soundfile raises LibsndfileError (a RuntimeError) for unreadable files
        raise ConfigError(f"reference audio {path} cannot be read ({exc}); give a WAV/FLAC/OGG file") from exc
    if data.shape[0] == 0:
        raise ConfigError(f"reference audio {path} is empty; record 3–10 s of clean speech")
    return data.mean(axis=1).astype(np.float32), int(rate)


def _phase_taps(up: int, down: int) -> tuple[np.ndarray, int]:
    """Per output phase r (output time = i + r/up input samples): taps over input offsets −half+1 … half."""
    cutoff = 0.5 * min(1.0, up / down) * _ROLLOFF  # cycles per input sample
    half = int(math.ceil(_ZERO_CROSSINGS / (2.0 * cutoff)))
    offsets = np.arange(-half + 1, half + 1, dtype=np.float64)  # k − i
    t = np.arange(up, dtype=np.float64)[:, None] / up - offsets[None, :]  # (i + r/up) − k
    # Kaiser window evaluated at the continuous offset t ∈ [−half, half]
    window = np.i0(_KAISER_BETA * np.sqrt(np.clip(1.0 - (t / half) ** 2, 0.0, 1.0))) / np.i0(_KAISER_BETA)
    taps = 2.0 * cutoff * np.sinc(2.0 * cutoff * t) * window
    taps /= taps.sum(axis=1, keepdims=True)  # unit DC gain in every phase
    return taps, half


def resample(samples: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Band-limited resampling; output length ceil(len · to / from); output n is at input time n · from / to."""
    samples = np.asarray(samples, dtype=np.float32).reshape(-1)
    if from_hz == to_hz:
        return samples.copy()
    if from_hz <= 0 or to_hz <= 0:
        raise ConfigError(f"cannot resample from {from_hz} Hz to {to_hz} Hz; sample rates must be positive")
    g = math.gcd(int(from_hz), int(to_hz))
    up, down = int(to_hz) // g, int(from_hz) // g
    taps, half = _phase_taps(up, down)
    n_out = -(-samples.size * up // down)
    padded = np.concatenate([np.zeros(half), samples.astype(np.float64), np.zeros(half + 1)])
    offsets = np.arange(-half + 1, half + 1)
    out = np.empty(n_out, dtype=np.float64)
    for start in range(0, n_out, _BLOCK):
        n = np.arange(start, min(start + _BLOCK, n_out))
        base, phase = divmod(n * down, up)
        window = padded[base[:, None] + offsets[None, :] + half]
        out[start : start + n.size] = np.einsum("ij,ij->i", window, taps[phase])
    return out.astype(np.float32)


def reference_spectrogram(audio_32k: np.ndarray) -> np.ndarray:
    """32 kHz mono audio [S] → linear magnitude spectrogram [1025, T] float32 (official STFT, see module doc)."""
    audio = np.asarray(audio_32k, dtype=np.float64).reshape(-1)
    pad = (N_FFT - HOP_LENGTH) // 2
    if audio.size <= pad:
        raise ConfigError(f"reference audio has {audio.size} samples at 32 kHz; it needs more than {pad} (use 3–10 s)")
    padded = np.pad(audio, (pad, pad), mode="reflect")
    n_frames = 1 + (padded.size - N_FFT) // HOP_LENGTH
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(WIN_LENGTH) / WIN_LENGTH)  # periodic Hann
    starts = np.arange(n_frames) * HOP_LENGTH
    frames = padded[starts[:, None] + np.arange(N_FFT)[None, :]] * window
    spectrum = np.fft.rfft(frames, n=N_FFT, axis=1)
    magnitude = np.sqrt(spectrum.real**2 + spectrum.imag**2 + MAGNITUDE_EPS)
    return magnitude.T.astype(np.float32)


@dataclass(frozen=True)
class ReferenceAudio:
    """One reference recording at both model rates (time-aligned: 16 kHz sample n ↔ 32 kHz sample 2n)."""

    audio_32k: np.ndarray  # scaled like the official loader: divided by min(2, peak) when the peak exceeds 1
    audio_16k: np.ndarray  # unscaled, for HuBERT
    source_rate_hz: int

    @property
    def duration_s(self) -> float:
        return self.audio_16k.size / HUBERT_SAMPLE_RATE_HZ


def load_reference(path: str | os.PathLike) -> ReferenceAudio:
    samples, rate = load_audio(path)
    audio_32k = resample(samples, rate, SOVITS_SAMPLE_RATE_HZ)
    peak = float(np.abs(audio_32k).max())
    if peak > 1.0:
        audio_32k = audio_32k / min(2.0, peak)
    audio_16k = resample(samples, rate, HUBERT_SAMPLE_RATE_HZ)
    _LOGGER.info("reference loaded path=%s rate_hz=%d seconds=%.2f", path, rate, audio_16k.size / HUBERT_SAMPLE_RATE_HZ)
    return ReferenceAudio(audio_32k.astype(np.float32), audio_16k, rate)
