"""The `Synthesizer` capability that the daemon, `speak` and the fallback voice share."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Final, Iterator, Optional, Protocol

import numpy as np

DEFAULT_TOP_K: Final = 15
DEFAULT_TOP_P: Final = 1.0
DEFAULT_TEMPERATURE: Final = 1.0
DEFAULT_REPETITION_PENALTY: Final = 1.35
DEFAULT_NOISE_SCALE: Final = 0.5
DEFAULT_SPEED: Final = 1.0


@dataclass(frozen=True)
class AudioChunk:
    """A piece of mono float32 audio in [-1, 1]; `is_last` marks the end of an utterance."""

    samples: np.ndarray
    sample_rate_hz: int
    is_last: bool = False


@dataclass(frozen=True)
class SynthesisOptions:
    """Per-call options; every field falls back to the official GPT-SoVITS defaults."""

    top_k: int = DEFAULT_TOP_K
    top_p: float = DEFAULT_TOP_P
    temperature: float = DEFAULT_TEMPERATURE
    repetition_penalty: float = DEFAULT_REPETITION_PENALTY
    noise_scale: float = DEFAULT_NOISE_SCALE
    speed: float = DEFAULT_SPEED
    seed: int = -1  # -1: random
    max_tokens: int = 1500
    stream: bool = True


@dataclass
class SynthesisResult:
    """What a whole-utterance synthesis produced (used by `speak --tokens-out`)."""

    audio: np.ndarray
    sample_rate_hz: int
    semantic_tokens: list[list[int]] = field(default_factory=list)  # per sentence


class Synthesizer(Protocol):
    """Turns text into audio chunks. Implementations: the neural voice and the fallback voice."""

    sample_rate_hz: int

    def synthesize(
        self,
        text: str,
        *,
        voice: Optional[str] = None,
        lang: str = "auto",
        options: Optional[SynthesisOptions] = None,
        cancel: Optional[threading.Event] = None,
    ) -> Iterator[AudioChunk]:
        """Yield audio chunks; stop early (without error) when `cancel` is set."""
        ...
