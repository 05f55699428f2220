"""Chunked SoVITS decoding while the GPT is still generating, with seams that match the whole-utterance waveform.

Each time new tokens arrive, the decoder runs on a window of tokens: `left_context` already-emitted tokens before the
new ones (the encoder sees what came before), all tokens generated so far up to the newest. The audio of the last
`right_context` tokens is held back, because future tokens still change it (the text encoder attends over the whole
window). The first `fade_samples` of each new piece are cross-faded (equal-power) with the tail the previous window
produced for the same samples. The latent noise is drawn once per sentence and indexed by absolute frame, so a
window sees exactly the noise the whole-utterance decode would: at noise_scale 0 and with enough context, streamed
and whole audio agree closely (the benchmark reports the seam error).

Emission schedule: every decode re-runs `left_context + right_context` tokens that are not emitted, so small pieces
cost more decoder time per second of audio. The first piece leaves as soon as `emit_schedule[0]` tokens are final
(early first audio); the k-th waits for `emit_schedule[k]` new final tokens (the last size repeats). Each piece must
be ready before the previous one has played, so pieces double while the GPT and decoder stages run ahead. Measured on
the full-size INT8 bundle with both stages pipelined (docs/performance.md): (8, 16, 32, 48) gave first audio in
407-444 ms with no playback stall, against 527-544 ms and one stall for (12, 24, 48), at the same seam error.
"""

from __future__ import annotations

from typing import Final, Optional

import numpy as np

from runtime.synth.synthesizer import SynthesisOptions

DEFAULT_LEFT_CONTEXT_TOKENS: Final = 12
DEFAULT_RIGHT_CONTEXT_TOKENS: Final = 4
DEFAULT_FADE_SAMPLES: Final = 640
DEFAULT_EMIT_SCHEDULE: Final = (8, 16, 32, 48)  # final tokens per emitted piece: first, second, ..., then the last repeats
FRAMES_PER_TOKEN: Final = 2  # 25 Hz tokens → 50 Hz frames
# Tokens the GPT must have produced before the first piece can leave: ask the GPT for a first chunk of this size.
FIRST_PIECE_TOKENS: Final = DEFAULT_EMIT_SCHEDULE[0] + DEFAULT_RIGHT_CONTEXT_TOKENS


def sentence_noise(rng: np.random.Generator, channels: int, max_tokens: int, speed: float) -> np.ndarray:
    """The sentence's latent noise [1, channels, frames], indexed by absolute frame. Streamed and whole decoding both
    take it, so the same seed gives the same noise (and, with enough context, nearly the same audio) either way."""
    frames = int(FRAMES_PER_TOKEN * (max_tokens + 1) / min(speed, 1.0)) + 2  # speed < 1 stretches the latent
    return rng.standard_normal((1, channels, frames)).astype(np.float32)


class StreamingDecoder:
    """Feed it token chunks with `push`; it returns the audio that is final so far. `finish` returns the rest."""

    def __init__(
        self,
        decoder,
        phones: np.ndarray,
        ge: np.ndarray,
        options: SynthesisOptions,
        rng: np.random.Generator,
        *,
        samples_per_token: int = 1280,
        left_context: int = DEFAULT_LEFT_CONTEXT_TOKENS,
        right_context: int = DEFAULT_RIGHT_CONTEXT_TOKENS,
        fade_samples: int = DEFAULT_FADE_SAMPLES,
        max_tokens: Optional[int] = None,
        emit_schedule: tuple[int, ...] = DEFAULT_EMIT_SCHEDULE,
    ) -> None:
        self.decoder = decoder
        self.phones = phones
        self.ge = ge
        self.noise_scale = float(options.noise_scale)
        self.speed = float(options.speed)
        self.spt = samples_per_token
        self.left = left_context
        self.right = right_context
        self.fade = min(fade_samples, right_context * samples_per_token)
        channels = getattr(decoder, "noise_channels", 192)
        self.noise = sentence_noise(rng, channels, max_tokens or options.max_tokens, self.speed)
        self.emit_schedule = tuple(max(1, int(n)) for n in emit_schedule) or (1,)
        self.pieces = 0  # pieces emitted so far (indexes emit_schedule)
        self.tokens: list[int] = []
        self.emitted_tokens = 0  # audio of tokens [0, emitted_tokens) has left (except the held fade tail)
        self.tail: Optional[np.ndarray] = None  # the previous window's audio for the next `fade` samples

    def _window_audio(self, start: int, end: int) -> np.ndarray:
        tokens = np.asarray(self.tokens[start:end], dtype=np.int64)
        noise = self.noise[:, :, FRAMES_PER_TOKEN * start : FRAMES_PER_TOKEN * end]
        return self.decoder.decode_with_noise(tokens, self.phones, self.ge, noise, self.noise_scale, 1.0)

    def _emit_through(self, boundary: int, final: bool) -> np.ndarray:
        start = max(0, self.emitted_tokens - self.left)
        audio = self._window_audio(start, len(self.tokens))
        offset = (self.emitted_tokens - start) * self.spt
        stop = len(audio) if final else (boundary - start) * self.spt
        piece = audio[offset:stop].copy()
        if self.tail is not None and self.fade:
            n = min(self.fade, len(piece), len(self.tail))
            ramp = np.sin(0.5 * np.pi * (np.arange(n, dtype=np.float32) + 0.5) / n)
            piece[:n] = self.tail[:n] * np.sqrt(1.0 - ramp**2) + piece[:n] * ramp
        self.tail = None if final else audio[stop : stop + self.fade].copy()
        self.emitted_tokens = boundary
        return piece

    def push(self, new_tokens: list[int]) -> np.ndarray:
        """Add tokens; return the newly final audio (possibly empty)."""
        self.tokens.extend(int(t) for t in new_tokens)
        if self.speed != 1.0:
            return np.zeros(0, dtype=np.float32)  # speed changes the latent length: decode the sentence whole
        boundary = len(self.tokens) - self.right
        wanted = self.emit_schedule[min(self.pieces, len(self.emit_schedule) - 1)]
        if boundary <= self.emitted_tokens or boundary - self.emitted_tokens < wanted:
            return np.zeros(0, dtype=np.float32)
        self.pieces += 1
        return self._emit_through(boundary, final=False)

    def finish(self) -> np.ndarray:
        """All tokens are in: return the remaining audio."""
        if not self.tokens:
            return np.zeros(0, dtype=np.float32)
        if self.speed != 1.0:
            return self.decoder.decode_with_noise(
                np.asarray(self.tokens, dtype=np.int64), self.phones, self.ge, self.noise, self.noise_scale, self.speed
            )
        if self.emitted_tokens >= len(self.tokens) and self.tail is None:
            return np.zeros(0, dtype=np.float32)
        return self._emit_through(len(self.tokens), final=True)
