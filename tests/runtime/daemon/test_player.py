"""The player: chime before alerts, Test wording, fallback voice when the neural voice fails, pre-emption latency."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from daemon_docs import alert_doc, speak_doc
from runtime.daemon.chime import CHIME_NOTES_HZ, chime
from device.null_amplifier import NullAmplifier
from device.playback import PlaybackConfig, PlaybackSequencer
from runtime.daemon.envelope import parse_document
from runtime.daemon.fallback import EspeakSynthesizer
from runtime.daemon.player import Player, PlayerConfig, announcement_text
from runtime.daemon.prerendered import PrerenderedAlerts, StandardAlert
from runtime.daemon.paced_sink import PacedSink
from runtime.errors import SynthesisError
from runtime.synth.synthesizer import AudioChunk

RATE = 16000


class RecordingSink:
    """The true edge (no sound card): keeps what was written."""

    def __init__(self):
        self.samples = []

    def open(self, sample_rate_hz):
        self.rate = sample_rate_hz

    def write(self, samples):
        self.samples.append(np.array(samples))

    def drain(self): ...

    def abort(self): ...

    def close(self): ...

    def audio(self):
        return np.concatenate(self.samples) if self.samples else np.zeros(0)


class BrokenVoice:
    sample_rate_hz = 32000

    def synthesize(self, text, **kwargs):
        raise SynthesisError("decoder exploded")
        yield  # pragma: no cover


@pytest.fixture
def espeak():
    synthesizer = EspeakSynthesizer()
    if not synthesizer.available():
        pytest.skip("espeak-ng is not installed (scripts/setup installs it)")
    return synthesizer


@pytest.fixture
def make_player():
    sequencers = []

    def make(sink, espeak, amplifier=None, all_zones=(), **kwargs):
        config = PlaybackConfig(sample_rate_hz=RATE, emergency_volume_pct=90, default_zones=tuple(all_zones))
        sequencer = PlaybackSequencer(amplifier or NullAmplifier(), sink, config)
        sequencers.append(sequencer)
        return Player(sequencer, espeak, config=PlayerConfig(sample_rate_hz=RATE), **kwargs)

    yield make
    for sequencer in sequencers:
        sequencer.close()


def test_chime_is_not_the_eas_tone():
    spectrum = np.abs(np.fft.rfft(chime(RATE)))
    freqs = np.fft.rfftfreq(len(chime(RATE)), 1 / RATE)
    peak = freqs[np.argmax(spectrum)]
    assert min(abs(peak - f) for f in CHIME_NOTES_HZ) < 5
    assert spectrum[(freqs > 845) & (freqs < 970)].max() < 0.05 * spectrum.max()


def test_test_alerts_are_announced_as_tests():
    command = parse_document(alert_doc("Drill", status="Test"), "alert")
    assert announcement_text(command) == "This is a test. Drill This was only a test."


def test_alert_plays_chime_then_speech_with_emergency_volume(espeak, make_player):
    sink, amplifier = RecordingSink(), NullAmplifier()
    command = parse_document(alert_doc("Fire", status="Actual", zones=[3], repeat=2), "alert")
    assert make_player(sink, espeak, amplifier).play(command, threading.Event())
    audio = sink.audio()
    one_chime = chime(RATE)
    assert np.allclose(audio[: len(one_chime)], one_chime, atol=1e-6)
    assert len(audio) > 2 * len(one_chime)
    assert ("set_emergency", True) in amplifier.calls and ("set_zones", (3,)) in amplifier.calls
    assert ("set_volume", 90) in amplifier.calls and amplifier.calls[-2:] == [("mute",), ("set_emergency", False)]


def test_a_command_without_zones_plays_in_all_of_the_sites_zones(espeak, make_player):
    sink, amplifier = RecordingSink(), NullAmplifier()
    command = parse_document(alert_doc("Storm", status="Actual"), "alert")
    assert make_player(sink, espeak, amplifier, all_zones=(1, 2, 5)).play(command, threading.Event())
    assert ("set_zones", (1, 2, 5)) in amplifier.calls


def test_broken_neural_voice_falls_back_to_espeak(espeak, make_player):
    sink = RecordingSink()
    command = parse_document(speak_doc("The ferry leaves in ten minutes."), "speak")
    assert make_player(sink, espeak, neural=lambda: BrokenVoice()).play(command, threading.Event())
    assert np.abs(sink.audio()).max() > 0.05


def test_prerendered_alert_plays_without_synthesis(espeak, make_player):
    standard = StandardAlert("evacuate", "Evacuate now.")
    prerendered = PrerenderedAlerts([standard])
    assert prerendered.render_all(espeak) == 1
    sink = RecordingSink()
    command = parse_document(alert_doc("Evacuate now.", chime=False), "alert")
    assert make_player(sink, BrokenEspeak(), prerendered=prerendered).play(command, threading.Event())
    assert len(sink.audio()) > RATE // 2


class BrokenEspeak:
    def render(self, text, lang="auto"):
        raise SynthesisError("no voice")


def test_cancel_stops_a_paced_playback_within_200_ms(espeak, make_player):
    sink = PacedSink(RecordingSink())
    player = make_player(sink, espeak)
    command = parse_document(speak_doc("This is a long announcement about the weather and the sea. " * 3), "speak")
    cancel = threading.Event()
    result = {}

    def play():
        result["completed"] = player.play(command, cancel)
        result["ended"] = time.monotonic()

    thread = threading.Thread(target=play)
    thread.start()
    deadline = time.monotonic() + 10
    while not sink.sink.samples and time.monotonic() < deadline:
        cancel.wait(0.01)
    cancel.set()
    cancelled_at = time.monotonic()
    thread.join(timeout=5)
    assert not result["completed"]
    assert result["ended"] - cancelled_at < 0.2


class CountingVoice:
    """A neural voice at the true edge: `started` when synthesis begins; then short pieces until cancelled or `pieces`
    are out; `ended` when its generator is done or closed."""

    sample_rate_hz = RATE

    def __init__(self, pieces=20):
        self.pieces = pieces
        self.started, self.ended = threading.Event(), threading.Event()

    def synthesize(self, text, *, voice, lang, options, cancel):
        self.started.set()
        try:
            for _ in range(self.pieces):
                if cancel.is_set():
                    return
                yield AudioChunk(np.full(RATE // 10, 0.1, dtype=np.float32), RATE)
        finally:
            self.ended.set()


class WaitingAmplifier(NullAmplifier):
    """Unmutes only once synthesis has begun (or 10 s passed): proves the audio is made while the amplifier gets ready."""

    def __init__(self, voice, fault=None):
        super().__init__()
        self.voice, self.fault = voice, fault
        self.synthesis_began_first = None

    def power_on(self):
        if self.fault is not None:
            self.voice.started.wait(10)  # fail once the synthesis is under way: it must then be stopped
            raise self.fault
        super().power_on()

    def unmute(self):
        self.synthesis_began_first = self.voice.started.wait(10)
        super().unmute()


def test_synthesis_starts_while_the_amplifier_gets_ready_not_after(espeak, make_player):
    voice = CountingVoice()
    amplifier, sink = WaitingAmplifier(voice), RecordingSink()
    command = parse_document(alert_doc("Fire in the engine room.", status="Actual"), "alert")
    assert make_player(sink, espeak, amplifier, neural=lambda: voice).play(command, threading.Event())
    assert amplifier.synthesis_began_first is True
    speech = sink.audio()[len(chime(RATE)):]
    assert np.count_nonzero(np.isclose(speech, 0.1)) == voice.pieces * (RATE // 10)  # every piece played, in full
    assert not _alive("announcement-audio")


def test_a_playback_that_fails_before_the_sink_stops_the_synthesis_it_started(espeak):
    from device.errors import AmplifierFault

    voice = CountingVoice(pieces=100_000)
    amplifier = WaitingAmplifier(voice, fault=AmplifierFault("no answer from the amplifier"))
    config = PlaybackConfig(sample_rate_hz=RATE, play_without_amplifier=False)
    with PlaybackSequencer(amplifier, RecordingSink(), config) as sequencer:
        player = Player(sequencer, espeak, neural=lambda: voice, config=PlayerConfig(sample_rate_hz=RATE))
        with pytest.raises(AmplifierFault):
            player.play(parse_document(speak_doc("The ferry leaves in ten minutes."), "speak"), threading.Event())
    assert voice.started.is_set() and voice.ended.is_set() and not _alive("announcement-audio")


def _alive(name):
    return any(t.name == name and t.is_alive() for t in threading.enumerate())


def test_the_stall_free_delay_is_how_far_the_latest_piece_came_behind_the_audio_before_it():
    from runtime.daemon.playout import stall_free_delay

    assert stall_free_delay([]) == 0.0
    assert stall_free_delay([(10.0, 0.3), (10.2, 0.6), (10.8, 1.0)]) == 0.0  # each piece came before it was due
    # the second piece came 0.5 s after the first, which lasts 0.3 s; the third was due at 0.9 s and came at 1.1 s
    assert stall_free_delay([(10.0, 0.3), (10.5, 0.6), (11.1, 1.0)]) == pytest.approx(0.2)


class ScriptedClock:
    """Monotonic times from a script (then the last one again): piece production times without waiting for them."""

    def __init__(self, times):
        self.times = list(times)

    def __call__(self):
        return self.times.pop(0) if len(self.times) > 1 else self.times[0]


def test_the_player_learns_the_hold_from_a_neural_announcement_and_applies_it_to_the_next(espeak, make_player):
    voice = CountingVoice(pieces=3)  # 0.1 s each; made at 0, 0.4 and 0.5 s: the second came 0.3 s late
    player = make_player(RecordingSink(), espeak, neural=lambda: voice)
    player._clock = ScriptedClock([100.0, 100.4, 100.5, 100.6])
    assert player.play(parse_document(speak_doc("Dinner is served."), "speak"), threading.Event())
    assert player.playout.seconds == pytest.approx(0.3)

    # the next announcement's speech waits that long after its first piece was made (a deliberate wait, on the clock)
    written = []

    class StampingSink(RecordingSink):
        def write(self, samples):
            written.append(time.monotonic())
            super().write(samples)

    player = make_player(StampingSink(), espeak, neural=lambda: CountingVoice(pieces=2))
    player.playout.seconds = 0.25
    made = time.monotonic()
    assert player.play(parse_document(speak_doc("Dinner is served."), "speak"), threading.Event())
    assert written[0] - made >= 0.25


def test_a_fallback_announcement_teaches_nothing_and_repeats_replay_the_first_rendition(espeak, make_player):
    voice = CountingVoice(pieces=4)
    calls = []
    sink = RecordingSink()

    def neural():
        calls.append(1)
        return voice

    player = make_player(sink, espeak, neural=neural)
    player.playout.seconds = 0.0
    assert player.play(parse_document(speak_doc("Dinner is served.", repeat=3), "speak"), threading.Event())
    assert len(calls) == 1  # one synthesis for three renditions
    assert np.count_nonzero(np.isclose(sink.audio(), 0.1)) == 3 * 4 * (RATE // 10)

    player = make_player(RecordingSink(), espeak, neural=lambda: BrokenVoice())
    player.playout.seconds = 0.7
    assert player.play(parse_document(speak_doc("Dinner is served."), "speak"), threading.Event())
    assert player.playout.seconds == 0.7  # the fallback's timing says nothing about the neural voice


def test_the_hold_covers_the_largest_delay_of_the_last_few_announcements():
    from runtime.daemon.playout import PlayoutHold

    hold = PlayoutHold(max_hold_s=1.0, remembered=3)
    for delay, expected in ((0.5, 0.5), (0.2, 0.5), (0.1, 0.5), (0.0, 0.2), (0.0, 0.1), (0.0, 0.0), (9.0, 1.0)):
        hold.learn([(0.0, 0.1), (0.1 + delay, 0.1)])
        assert hold.seconds == pytest.approx(expected)


class FailingAfterOnePiece(CountingVoice):
    """Makes one piece, then fails: the fallback voice then speaks the whole text."""

    def __init__(self):
        super().__init__(pieces=1)
        self.calls = 0

    def synthesize(self, text, **kwargs):
        self.calls += 1
        yield from super().synthesize(text, **kwargs)
        raise SynthesisError("decoder exploded")


def test_a_rendition_broken_off_part_way_is_synthesized_again_for_a_repeat_not_replayed(espeak, make_player):
    voice = FailingAfterOnePiece()
    player = make_player(RecordingSink(), espeak, neural=lambda: voice)
    assert player.play(parse_document(speak_doc("Dinner is served.", repeat=2), "speak"), threading.Event())
    assert voice.calls == 2 and player.playout.seconds == 0.0
