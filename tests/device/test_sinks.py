"""Sinks: AlsaSink's queue, silence filling, drain and abort with the aplay process faked (no sound card here);
WavFileSink content; the streaming resampler."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import soundfile

from device.errors import AudioSinkError
from device.playback import PLAYBACK_PREEMPTED, PlaybackConfig, PlaybackSequencer
from device.null_amplifier import NullAmplifier
from device.resample import StreamResampler, to_int16_bytes
from device.sinks import AlsaSink, NullSink, WavFileSink


class FakeAplay:
    """Stands in for the `aplay` process: records bytes; with `stall_after`, blocks like a full ALSA buffer."""

    def __init__(self, argv, stall_after: int | None = None) -> None:
        self.argv = list(argv)
        self.stall_after = stall_after
        self.received = bytearray()
        self.got_bytes = threading.Event()
        self.stalled = threading.Event()
        self.killed = threading.Event()
        self.killed_at = 0.0
        self.closed = threading.Event()
        self.stdin = self
        self.pid = 4242

    # stdin
    def write(self, data: bytes) -> int:
        if self.killed.is_set() or self.closed.is_set():
            raise BrokenPipeError("aplay is gone")
        if self.stall_after is not None and len(self.received) >= self.stall_after:
            self.stalled.set()
            self.killed.wait()  # a device that stopped consuming until the process dies
            raise BrokenPipeError("aplay killed")
        self.received.extend(data)
        self.got_bytes.set()
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed.set()

    # process
    def poll(self):
        return -9 if self.killed.is_set() else (0 if self.closed.is_set() else None)

    def kill(self) -> None:
        self.killed_at = time.monotonic()
        self.killed.set()

    def wait(self, timeout=None):
        return self.poll()


class Factory:
    def __init__(self, **kwargs) -> None:
        self.kwargs = kwargs
        self.processes: list[FakeAplay] = []
        self.spawned = threading.Event()

    def __call__(self, argv):
        process = FakeAplay(argv, **self.kwargs)
        self.processes.append(process)
        self.spawned.set()
        return process


def test_alsa_sink_feeds_aplay_resampled_int16():
    factory = Factory()
    sink = AlsaSink("hw:1,0", device_rate_hz=48000, period_ms=10, buffer_ms=0, process_factory=factory)
    sink.open(16000)
    samples = np.full(1600, 0.5, dtype=np.float32)  # 0.1 s at 16 kHz
    sink.write(samples[:700])
    sink.write(samples[700:])
    sink.drain()
    sink.close()
    process = factory.processes[0]
    assert process.argv[:4] == ["aplay", "-q", "-D", "hw:1,0"] and "48000" in process.argv
    pcm = np.frombuffer(bytes(process.received), dtype="<i2")
    assert pcm.size >= 4790  # 0.1 s at 48 kHz (minus the resampler's last sample), padded to a period
    assert np.all(pcm[10:4700] == int(0.5 * 32767))
    assert process.closed.is_set() and not process.killed.is_set()


def test_alsa_sink_fills_gaps_with_silence_while_playing():
    factory = Factory()
    sink = AlsaSink("default", device_rate_hz=8000, period_ms=10, buffer_ms=0, process_factory=factory)
    sink.open(8000)
    process = factory.processes[0]
    assert process.got_bytes.wait(2.0), "silence flows before the first chunk arrives"
    assert not any(process.received)
    sink.drain()
    sink.close()


def test_abort_drops_buffered_audio_and_releases_a_blocked_write_within_200ms():
    factory = Factory(stall_after=0)
    sink = AlsaSink("default", device_rate_hz=8000, period_ms=10, queue_periods=4, process_factory=factory)
    sink.open(8000)
    writer_done = threading.Event()

    def feed() -> None:
        sink.write(np.zeros(8000, dtype=np.float32))  # 100 periods into a queue of 4: blocks
        writer_done.set()

    feeder = threading.Thread(target=feed)
    feeder.start()
    process = factory.processes[0]
    assert process.stalled.wait(2.0)
    assert not writer_done.wait(0.05), "write blocks while the queue is full"
    started = time.monotonic()
    sink.abort()
    assert process.killed.is_set() and process.killed_at - started < 0.2
    assert writer_done.wait(0.2), "the blocked write returned"
    feeder.join(timeout=1.0)
    sink.open(8000)  # the next playback gets a fresh aplay
    assert len(factory.processes) == 2
    sink.close()


def test_preemption_aborts_the_sink_within_200ms():
    """A cancel set mid-playback kills aplay within 200 ms, even with the writer blocked on a full queue."""
    factory = Factory(stall_after=2000)
    sink = AlsaSink("default", device_rate_hz=16000, period_ms=20, queue_periods=3, process_factory=factory)
    events = []
    cancel = threading.Event()
    results = []
    produced = threading.Event()

    def endless():
        while True:
            produced.set()
            yield np.full(1600, 0.1, dtype=np.float32)

    config = PlaybackConfig(warmup_s=0.0, fault_poll_interval_s=0.0, sample_rate_hz=16000)
    with PlaybackSequencer(NullAmplifier(), sink, config, on_event=events.append) as sequencer:
        player = threading.Thread(target=lambda: results.append(sequencer.play(endless(), cancel=cancel)))
        player.start()
        assert produced.wait(2.0) and factory.spawned.wait(2.0)
        assert factory.processes[0].stalled.wait(2.0), "the device stopped consuming: the queue fills, write blocks"
        cancelled_at = time.monotonic()
        cancel.set()
        assert factory.processes[0].killed.wait(0.2), "aplay was killed within 200 ms"
        assert factory.processes[0].killed_at - cancelled_at < 0.2
        player.join(timeout=2.0)
        assert not player.is_alive()
    assert results[0].preempted and not results[0].completed
    assert sequencer.amplifier.calls[-1] == ("mute",)
    assert events[-1].kind == PLAYBACK_PREEMPTED
    sink.close()


def test_aplay_dying_is_an_audio_sink_error():
    factory = Factory()
    sink = AlsaSink("hw:9", device_rate_hz=8000, period_ms=10, process_factory=factory)
    sink.open(8000)
    factory.processes[0].closed.set()  # aplay exited (device busy, unplugged)
    with pytest.raises(AudioSinkError, match="aplay on ALSA device 'hw:9' stopped"):
        for _ in range(50):
            sink.write(np.zeros(800, dtype=np.float32))
            sink.drain()
    sink.close()


def test_missing_aplay_is_an_audio_sink_error():
    def missing(argv):
        raise FileNotFoundError("aplay")

    with pytest.raises(AudioSinkError, match="install alsa-utils or use the WAV sink"):
        AlsaSink(process_factory=missing).open(16000)


def test_wav_sink_appends_playbacks_and_resamples_to_its_first_rate(tmp_path):
    path = tmp_path / "nested" / "out.wav"
    sink = WavFileSink(path)
    sink.open(16000)
    sink.write(np.full(1600, 0.25, dtype=np.float32))
    sink.drain()
    sink.open(32000)
    sink.write(np.full(3200, -0.25, dtype=np.float32))
    sink.abort()
    sink.write(np.full(3200, 0.9, dtype=np.float32))  # dropped: aborted
    sink.close()
    audio, rate = soundfile.read(path, dtype="float32")
    assert rate == 16000
    assert audio.size == pytest.approx(3200, abs=2)
    assert np.allclose(audio[:1600], 0.25, atol=1e-3) and np.allclose(audio[1610:], -0.25, atol=1e-3)


def test_null_sink_counts():
    sink = NullSink()
    sink.open(22050)
    sink.write(np.zeros(10, dtype=np.float32))
    sink.abort()
    assert (sink.sample_rate_hz, sink.samples_written, sink.aborts) == (22050, 10, 1)


@pytest.mark.parametrize("source, target", [(32000, 48000), (22050, 48000), (48000, 16000), (16000, 16000)])
def test_resampling_in_chunks_equals_resampling_at_once(source, target):
    rng = np.random.default_rng(0)
    signal = rng.uniform(-1, 1, source // 5).astype(np.float32)
    whole = StreamResampler(source, target).process(signal)
    streaming = StreamResampler(source, target)
    pieces = np.concatenate([streaming.process(signal[i:i + 317]) for i in range(0, signal.size, 317)])
    assert pieces.size == whole.size
    assert np.allclose(pieces, whole, atol=1e-6)
    assert abs(whole.size - signal.size * target / source) <= 2


def test_resampled_tone_keeps_its_pitch():
    rate_in, rate_out = 32000, 48000
    t = np.arange(rate_in) / rate_in
    out = StreamResampler(rate_in, rate_out).process(np.sin(2 * np.pi * 1000 * t).astype(np.float32))
    spectrum = np.abs(np.fft.rfft(out))
    assert np.argmax(spectrum) * rate_out / out.size == pytest.approx(1000, abs=2)


def test_int16_conversion_clips():
    pcm = np.frombuffer(to_int16_bytes(np.array([0.0, 1.5, -2.0, 0.5], dtype=np.float32)), dtype="<i2")
    assert pcm.tolist() == [0, 32767, -32767, 16383]


@pytest.mark.skipif(not __import__("shutil").which("aplay"), reason="aplay (alsa-utils) is not installed")
def test_real_aplay_through_the_alsa_file_plugin(tmp_path):
    """The real aplay accepts our arguments; ALSA's file plugin (on the null PCM) captures what was played."""
    import os
    import subprocess

    capture = tmp_path / "capture.raw"
    (tmp_path / ".asoundrc").write_text(
        f'pcm.capture {{ type file slave.pcm "null" file "{capture}" format "raw" }}\n'
    )
    env = {**os.environ, "HOME": str(tmp_path)}

    def spawn(argv):
        return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)

    sink = AlsaSink("capture", device_rate_hz=48000, period_ms=20, buffer_ms=50, process_factory=spawn)
    sink.open(16000)
    sink.write(np.full(3200, 0.25, dtype=np.float32))  # 0.2 s
    sink.drain()
    sink.close()
    pcm = np.frombuffer(capture.read_bytes(), dtype="<i2")
    assert np.count_nonzero(pcm == 8191) >= 9600 - 960 - 3  # 0.2 s at 48 kHz, less at most one period
