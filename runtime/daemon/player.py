"""Turn a speak or alert command into audio on the PA: chime, announcement wording, synthesis with fallback, repeats.

Never silent: a pre-rendered standard alert plays as is; if the neural voice raises, the fallback voice speaks.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Final, Iterator, Optional

import numpy as np

from runtime.daemon.chime import chime, silence
from runtime.daemon.envelope import AlertCommand, SpeakCommand
from runtime.daemon.playout import PlayoutHold
from runtime.daemon.prerendered import PrerenderedAlerts
from runtime.errors import SkyvoiceError
from runtime.synth.run_ahead import AheadStream, StopSignal
from runtime.synth.synthesizer import AudioChunk, SynthesisOptions, Synthesizer

_LOGGER = logging.getLogger(__name__)

CHUNK_SECONDS: Final = 0.05
AUDIO_CHUNKS_AHEAD: Final = 1200  # chunks produced ahead of the sink (a minute of 50 ms chunks; speech pieces are longer)
REPEAT_GAP_SECONDS: Final = 0.8
STATUS_WORDING: Final = {
    "Test": ("This is a test.", "This was only a test."),
    "Exercise": ("This is an exercise.", "This was only an exercise."),
}


class PlaybackFailed(SkyvoiceError):
    """Neither the neural voice nor the fallback voice could produce audio."""


@dataclass(frozen=True)
class PlayerConfig:
    sample_rate_hz: int = 32000
    default_volume_pct: int = 60
    emergency_volume_pct: int = 90
    default_voice: Optional[str] = None
    synthesis: Optional[SynthesisOptions] = None  # None: the voice's defaults


@dataclass(frozen=True)
class _Piece:
    """A chunk on its way from the producer thread to the sink: when it was made, and whether it opens the speech."""

    chunk: AudioChunk
    made_at: float
    opens_speech: bool = False


@dataclass
class _Announcement:
    """What one play() learns while its audio is made: the neural speech's (made_at, seconds) per piece of the first
    rendition, whether the neural voice made all of it, and whether that rendition may be replayed for repeats (not
    when the neural voice broke off part-way and the fallback voice spoke the text again after its fragment)."""

    timeline: list = field(default_factory=list)
    neural_complete: bool = False
    replayable: bool = True


def announcement_text(command: AlertCommand | SpeakCommand) -> str:
    """What is spoken: Test and Exercise alerts are announced as such, before and after."""
    if isinstance(command, AlertCommand) and command.status in STATUS_WORDING:
        before, after = STATUS_WORDING[command.status]
        return f"{before} {command.text} {after}"
    return command.text


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Linear-interpolation resampling (speech to the output rate; good enough for a PA)."""
    samples = np.asarray(samples, dtype=np.float32).reshape(-1)
    if rate_in == rate_out or len(samples) == 0:
        return samples
    count = int(round(len(samples) * rate_out / rate_in))
    positions = np.arange(count, dtype=np.float64) * (rate_in / rate_out)
    return np.interp(positions, np.arange(len(samples)), samples).astype(np.float32)


class Player:
    """`play(command, cancel)` → True when it played to the end, False when cancelled; raises PlaybackFailed."""

    def __init__(
        self,
        playback,
        fallback: Synthesizer,
        *,
        neural: Callable[[], Optional[Synthesizer]] = lambda: None,
        prerendered: Optional[PrerenderedAlerts] = None,
        config: PlayerConfig = PlayerConfig(),
        clock: Callable[[], float] = time.monotonic,
    ):
        self.playback = playback
        self.fallback = fallback
        self.neural = neural
        self.prerendered = prerendered or PrerenderedAlerts(())
        self.config = config
        self.first_audio_at: Optional[float] = None  # wall-clock time the last play() handed its first audio over
        self.playout = PlayoutHold()  # how long streamed speech builds up before it plays (learned; playout.py)
        self._clock = clock

    def play(self, command: AlertCommand | SpeakCommand, cancel: threading.Event) -> bool:
        is_alert = isinstance(command, AlertCommand)
        envelope = command.envelope
        volume = envelope.volume if envelope.volume is not None else self.config.default_volume_pct
        if is_alert:
            volume = max(volume, self.config.emergency_volume_pct)
        self.first_audio_at = None
        announcement = _Announcement()
        # The audio is produced from now on, in its own thread, while the sequencer powers the amplifier up, waits
        # out its warm-up and sets zones and volume: synthesis overlaps all that (and the chime) instead of starting
        # when the sink asks for the first chunk, and what it makes meanwhile is a buffer against stalls.
        audio = AheadStream(
            lambda stop: self._chunks(command, stop, announcement), name="announcement-audio", max_ahead=AUDIO_CHUNKS_AHEAD, cancel=cancel,
        )
        try:
            completed = self.playback.play(
                self._held(audio, cancel),
                emergency=is_alert and command.status == "Actual",
                zones=envelope.zones or None,  # none given: the box's amplifier.all_zones
                volume_pct=volume,
                cancel=cancel,
            )
        finally:
            audio.close()  # a playback that ended early (cancelled, amplifier fault) stops the synthesis too
        if completed and announcement.neural_complete:
            self.playout.learn(announcement.timeline)
        return completed

    def _held(self, pieces: Iterator[_Piece], cancel: threading.Event) -> Iterator[AudioChunk]:
        """The chunks for the sink; the speech's first piece waits until `playout.seconds` after it was made."""
        for piece in pieces:
            if piece.opens_speech and self.playout.seconds > 0:
                wait = piece.made_at + self.playout.seconds - self._clock()
                if wait > 0 and cancel.wait(wait):
                    return
            if self.first_audio_at is None and len(piece.chunk.samples):
                self.first_audio_at = time.time()
            yield piece.chunk

    def _chunks(self, command: AlertCommand | SpeakCommand, cancel: StopSignal, announcement: _Announcement) -> Iterator[_Piece]:
        """Chime, speech and repeats, made in the `AheadStream`'s thread; `cancel` is its stop signal (set by the
        command's cancel event or by the stream's close). Repeats replay the first rendition (the same words, and no
        second synthesis)."""
        rate = self.config.sample_rate_hz
        with_chime = isinstance(command, AlertCommand) and command.chime
        spoken: Optional[list[AudioChunk]] = None
        for index in range(command.envelope.repeat):
            if cancel.is_set():
                return
            if index:
                yield from self._pieces(self._split(silence(REPEAT_GAP_SECONDS, rate), cancel))
            if with_chime:
                yield from self._pieces(self._split(chime(rate), cancel))
            if spoken is not None:
                yield from self._pieces(iter(spoken))
                continue
            rendition = []
            for piece in self._speech(command, cancel, announcement, first=index == 0):
                rendition.append(piece.chunk)
                yield piece
            spoken = rendition if announcement.replayable else None
        yield _Piece(AudioChunk(np.zeros(0, dtype=np.float32), rate, is_last=True), self._clock())

    def _pieces(self, chunks: Iterator[AudioChunk]) -> Iterator[_Piece]:
        for chunk in chunks:
            yield _Piece(chunk, self._clock())

    def _speech(
        self, command: AlertCommand | SpeakCommand, cancel: StopSignal, announcement: _Announcement, first: bool
    ) -> Iterator[_Piece]:
        """One rendition; only the `first` one's neural pieces are timed for the playout hold."""
        rate = self.config.sample_rate_hz
        prerendered = self.prerendered.lookup(command.text, command.lang) if isinstance(command, AlertCommand) else None
        if prerendered is not None:
            _LOGGER.info("playing pre-rendered alert id=%s", command.envelope.id)
            yield from self._pieces(self._split(resample(prerendered.samples, prerendered.sample_rate_hz, rate), cancel))
            return
        text = announcement_text(command)
        neural = self.neural()
        if neural is not None:
            produced = 0
            try:
                voice = command.voice or self.config.default_voice
                chunks = neural.synthesize(text, voice=voice, lang=command.lang, options=self.config.synthesis, cancel=cancel)
                for chunk in chunks:
                    samples = resample(chunk.samples, chunk.sample_rate_hz, rate)
                    made_at = self._clock()
                    if first and samples.size:
                        announcement.timeline.append((made_at, samples.size / rate))
                    yield _Piece(AudioChunk(samples, rate), made_at, opens_speech=produced == 0)
                    produced += 1
                announcement.neural_complete = first and not cancel.is_set()
                return
            except Exception as exc:  # any neural-voice failure: report it and let the fallback voice speak
                announcement.replayable = produced == 0  # a fragment then the whole text again: not worth repeating
                _LOGGER.warning(
                    "neural voice failed, fallback voice speaks id=%s chunks_played=%d error=%s: %s",
                    command.envelope.id, produced, type(exc).__name__, exc,
                )
        try:
            audio, audio_rate = self.fallback.render(text, lang=command.lang)
        except SkyvoiceError as exc:
            raise PlaybackFailed(f"no voice could speak command {command.envelope.id}: {exc}") from exc
        yield from self._pieces(self._split(resample(audio, audio_rate, rate), cancel))

    def _split(self, samples: np.ndarray, cancel: StopSignal) -> Iterator[AudioChunk]:
        rate = self.config.sample_rate_hz
        step = max(1, int(rate * CHUNK_SECONDS))
        for start in range(0, len(samples), step):
            if cancel.is_set():
                return
            yield AudioChunk(samples[start : start + step], rate)
