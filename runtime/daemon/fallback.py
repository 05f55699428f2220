"""The fallback voice: espeak-ng in a subprocess. Speaks when no bundle is installed or the neural voice fails."""

from __future__ import annotations

import io
import logging
import shutil
import subprocess
import threading
from typing import Final, Iterator, Optional

import numpy as np
import soundfile

from runtime.errors import SynthesisError
from runtime.synth.synthesizer import AudioChunk, SynthesisOptions

_LOGGER = logging.getLogger(__name__)

CHUNK_SECONDS: Final = 0.05
ESPEAK_VOICES: Final = {"auto": "en", "en": "en", "zh": "cmn", "yue": "yue", "ja": "ja", "ko": "ko"}
ESPEAK_SAMPLE_RATE_HZ: Final = 22050


class EspeakSynthesizer:
    """Implements runtime/synth/synthesizer.py's Synthesizer with the `espeak-ng` program."""

    sample_rate_hz = ESPEAK_SAMPLE_RATE_HZ

    def __init__(self, executable: str = "espeak-ng", *, words_per_minute: int = 160, timeout_s: float = 30.0):
        self.executable = executable
        self.words_per_minute = words_per_minute
        self.timeout_s = timeout_s

    def available(self) -> bool:
        return shutil.which(self.executable) is not None

    def synthesize(
        self,
        text: str,
        *,
        voice: Optional[str] = None,
        lang: str = "auto",
        options: Optional[SynthesisOptions] = None,
        cancel: Optional[threading.Event] = None,
    ) -> Iterator[AudioChunk]:
        audio, rate = self.render(text, lang=lang)
        step = max(1, int(rate * CHUNK_SECONDS))
        for start in range(0, len(audio), step):
            if cancel is not None and cancel.is_set():
                return
            yield AudioChunk(audio[start : start + step], rate, is_last=start + step >= len(audio))

    def render(self, text: str, *, lang: str = "auto") -> tuple[np.ndarray, int]:
        """The whole utterance as float32 mono samples and its sample rate."""
        if shutil.which(self.executable) is None:
            raise SynthesisError(f"the fallback voice program '{self.executable}' is not installed; run scripts/setup (apt: espeak-ng)")
        command = [self.executable, "--stdout", "--stdin", "-v", ESPEAK_VOICES.get(lang, "en"), "-s", str(self.words_per_minute)]
        try:
            result = subprocess.run(
                command, input=text.encode("utf-8", "replace"), capture_output=True, timeout=self.timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            raise SynthesisError(f"the fallback voice took longer than {self.timeout_s:.0f} s for {len(text)} characters") from None
        if result.returncode != 0 or not result.stdout:
            detail = result.stderr.decode("utf-8", "replace").strip()[:200]
            raise SynthesisError(f"espeak-ng failed with exit code {result.returncode}: {detail or 'no audio'}")
        try:
            audio, rate = soundfile.read(io.BytesIO(result.stdout), dtype="float32", always_2d=False)
        except (RuntimeError, soundfile.LibsndfileError) as exc:
            raise SynthesisError(f"espeak-ng wrote audio that could not be read: {exc}") from None
        if audio.ndim > 1:
            audio = audio.mean(axis=1)
        _LOGGER.debug("fallback voice rendered chars=%d seconds=%.2f", len(text), len(audio) / rate)
        return np.ascontiguousarray(audio, dtype=np.float32), int(rate)
