"""Torch-free SoVITS decoder call: semantic tokens + target phones + ge → 32 kHz waveform via `sovits_decoder.onnx`.

The host draws the flow noise with the caller's seeded numpy generator, so a fixed seed gives a fixed waveform on
ONNX Runtime and TensorRT alike.
"""

from __future__ import annotations

import logging
from typing import Final, Optional, Sequence, Union

import numpy as np

from runtime.errors import SynthesisError
from runtime.synth.runner import GraphRunner

_LOGGER = logging.getLogger(__name__)

DEFAULT_INTER_CHANNELS: Final = 192
FRAMES_PER_TOKEN: Final = 2  # 25 Hz semantic tokens → 50 Hz frames

ArrayLike = Union[np.ndarray, Sequence[int], Sequence[float]]


def decoded_frames(n_tokens: int, speed: float) -> int:
    """T' = 2N at speed 1, else floor(2N / speed) + 1, divided in float32 like the graph's `speed` input."""
    frames = FRAMES_PER_TOKEN * n_tokens
    if np.float32(speed) == np.float32(1.0):
        return frames
    return int(np.floor(np.float32(frames) / np.float32(speed))) + 1


def _noise_channels(runner: GraphRunner) -> int:
    """The static channel dim of the graph's `noise` input (ONNX Runtime or TensorRT), else the v2 default 192."""
    session = getattr(runner, "session", None)
    if session is not None:
        for info in session.get_inputs():
            if info.name == "noise" and isinstance(info.shape[1], int):
                return int(info.shape[1])
    engine = getattr(runner, "engine", None)
    if engine is not None and hasattr(engine, "get_tensor_shape"):
        channels = int(engine.get_tensor_shape("noise")[1])
        if channels > 0:
            return channels
    return DEFAULT_INTER_CHANNELS


class SovitsDecoder:
    """Runs one whole-utterance decode per call; stateless apart from the runner."""

    def __init__(self, runner: GraphRunner, *, inter_channels: Optional[int] = None) -> None:
        self.runner = runner
        self.inter_channels = int(inter_channels) if inter_channels is not None else _noise_channels(runner)

    @property
    def noise_channels(self) -> int:
        return self.inter_channels

    def decode(
        self,
        tokens: ArrayLike,
        phones: ArrayLike,
        ge: ArrayLike,
        noise_scale: float,
        speed: float,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """tokens [N] (target semantic tokens), phones [Xt] (target phones only), ge [gin] → float32 audio [S]."""
        tokens = np.asarray(tokens, dtype=np.int64).reshape(1, -1)
        phones = np.asarray(phones, dtype=np.int64).reshape(1, -1)
        ge = np.asarray(ge, dtype=np.float32).reshape(1, -1, 1)
        if tokens.shape[1] == 0:
            raise SynthesisError("SoVITS decode got no semantic tokens; the GPT stage must produce at least one")
        if phones.shape[1] == 0:
            raise SynthesisError("SoVITS decode got no target phones; pass the sentence's phone ids")
        if not (speed > 0 and np.isfinite(speed)):
            raise SynthesisError(f"speed={speed} is not a positive number; use e.g. 1.0 (normal) or 1.2 (faster)")
        if not (noise_scale >= 0 and np.isfinite(noise_scale)):
            raise SynthesisError(f"noise_scale={noise_scale} must be ≥ 0; the official default is 0.5")
        frames = decoded_frames(tokens.shape[1], speed)
        noise = rng.standard_normal((1, self.inter_channels, frames)).astype(np.float32)
        return self.decode_with_noise(tokens, phones, ge, noise, noise_scale, speed)

    def decode_with_noise(
        self,
        tokens: ArrayLike,
        phones: ArrayLike,
        ge: ArrayLike,
        noise: np.ndarray,
        noise_scale: float,
        speed: float,
    ) -> np.ndarray:
        """As `decode`, with the standard-normal latent noise [1, inter, ≥T'] given (streaming indexes it by frame)."""
        tokens = np.asarray(tokens, dtype=np.int64).reshape(1, -1)
        phones = np.asarray(phones, dtype=np.int64).reshape(1, -1)
        ge = np.asarray(ge, dtype=np.float32).reshape(1, -1, 1)
        frames = decoded_frames(tokens.shape[1], speed)
        if noise.shape[-1] < frames:
            raise SynthesisError(f"SoVITS decode needs {frames} noise frames, got {noise.shape[-1]}")
        outputs = self.runner.run(
            {
                "semantic_tokens": tokens,
                "phones": phones,
                "ge": ge,
                "noise": np.ascontiguousarray(noise, dtype=np.float32),
                "noise_scale": np.array([noise_scale], dtype=np.float32),
                "speed": np.array([speed], dtype=np.float32),
            },
            ["audio"],
        )
        audio = np.asarray(outputs["audio"], dtype=np.float32).reshape(-1)
        _LOGGER.debug("sovits decoded tokens=%d frames=%d samples=%d", tokens.shape[1], frames, audio.size)
        return audio
