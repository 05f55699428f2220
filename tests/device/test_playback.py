"""PlaybackSequencer with pymodbus's server as the amplifier: the command sequence, overrides, faults, dead bus."""

from __future__ import annotations

import json
import queue
import threading

import numpy as np
import pytest
import soundfile

from device.errors import AmplifierFault
from device.modbus_rtu import ModbusRtuAmplifier
from device.playback import (
    AMP_ERROR,
    AMP_FAULT,
    AMP_REACHABLE,
    AMP_RECOVERED,
    AMP_STANDBY,
    AMP_UNREACHABLE,
    PLAYBACK_FINISHED,
    PLAYBACK_STARTED,
    PlaybackConfig,
    PlaybackSequencer,
)
from device.sinks import NullSink, WavFileSink
from tests.device.conftest import drain_queue

QUIET = PlaybackConfig(warmup_s=0.0, fault_poll_interval_s=0.0, idle_standby_s=3600.0, sample_rate_hz=16000)


def tone(seconds: float = 0.05, rate: int = 16000) -> list[np.ndarray]:
    t = np.arange(int(seconds * rate)) / rate
    signal = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return [signal[i:i + 200] for i in range(0, signal.size, 200)]


def writes(sim) -> list[tuple[str, int]]:
    return [(w.function, w.value) for w in drain_queue(sim.writes)]


@pytest.fixture
def events():
    return queue.Queue()


def kinds(q) -> list[str]:
    return [e.kind for e in drain_queue(q)]


def test_exact_command_sequence_around_a_playback(modbus_amp, modbus_sim, events, tmp_path):
    sink = WavFileSink(tmp_path / "out.wav")
    with PlaybackSequencer(modbus_amp, sink, QUIET, on_event=events.put) as sequencer:
        result = sequencer.play(iter(tone()), zones=[1, 2], volume_pct=40)
        assert result and result.completed and not result.preempted and result.amp_errors == ()
        assert writes(modbus_sim) == [
            ("power", 1), ("zones", 0b11), ("volume", 40), ("mute", 0),  # before the first sample
            ("mute", 1),  # after the last
        ]
        second = sequencer.play(iter(tone()), volume_pct=55)  # already on, zones left alone
        assert second.completed
        assert writes(modbus_sim) == [("volume", 55), ("mute", 0), ("mute", 1)]
    sink.close()
    assert kinds(events) == [PLAYBACK_STARTED, PLAYBACK_FINISHED, PLAYBACK_STARTED, PLAYBACK_FINISHED]
    audio, rate = soundfile.read(tmp_path / "out.wav", dtype="float32")
    assert rate == 16000 and audio.size == 2 * sum(c.size for c in tone())
    assert np.max(np.abs(audio)) == pytest.approx(0.3, abs=1e-3)


def test_emergency_overrides_volume_and_sets_priority_mode(modbus_amp, modbus_sim):
    config = PlaybackConfig(warmup_s=0.0, fault_poll_interval_s=0.0, emergency_volume_pct=95)
    with PlaybackSequencer(modbus_amp, NullSink(), config) as sequencer:
        sequencer.play(iter(tone()), emergency=True, volume_pct=30, zones=[3])
    assert writes(modbus_sim) == [
        ("power", 1), ("zones", 0b100), ("emergency", 1), ("volume", 95), ("mute", 0),
        ("mute", 1), ("emergency", 0),
    ]
    assert modbus_sim.value("volume") == 95


def test_standby_after_the_idle_timeout(modbus_amp, modbus_sim, events):
    config = PlaybackConfig(warmup_s=0.0, fault_poll_interval_s=0.0, idle_standby_s=0.0)
    with PlaybackSequencer(modbus_amp, NullSink(), config, on_event=events.put) as sequencer:
        sequencer.play(iter(tone()))
        while (event := events.get(timeout=5)).kind != AMP_STANDBY:
            pass
    assert writes(modbus_sim)[-1] == ("power", 0)


@pytest.mark.parametrize("emergency", [False, True])
def test_dead_bus_is_reported_and_audio_still_plays(modbus_amp, pty_pair, events, emergency):
    pty_pair.cut()
    sink = NullSink()
    with PlaybackSequencer(modbus_amp, sink, QUIET, on_event=events.put) as sequencer:
        result = sequencer.play(iter(tone()), volume_pct=50, emergency=emergency)
    assert result.completed and sink.samples_written == sum(c.size for c in tone())
    assert [e.split(":")[0] for e in result.amp_errors] == ["power_on", "mute"]  # the rest skipped, mute still tried
    reported = drain_queue(events)
    errors = [e for e in reported if e.kind == AMP_ERROR]
    assert [e.step for e in errors] == ["power_on", "mute"]
    assert "did not answer power" in errors[0].message


def test_dead_bus_can_refuse_to_play_when_configured(modbus_amp, pty_pair):
    pty_pair.cut()
    sink = NullSink()
    config = PlaybackConfig(warmup_s=0.0, fault_poll_interval_s=0.0, play_without_amplifier=False)
    with PlaybackSequencer(modbus_amp, sink, config) as sequencer:
        with pytest.raises(AmplifierFault, match="did not answer power"):
            sequencer.play(iter(tone()))
    assert sink.samples_written == 0


def test_read_back_mismatch_during_setup_is_reported(modbus_amp, modbus_sim, events):
    modbus_sim.stick("volume", 5)
    with PlaybackSequencer(modbus_amp, NullSink(), QUIET, on_event=events.put) as sequencer:
        result = sequencer.play(iter(tone()), volume_pct=70)
    assert result.completed
    assert [e.step for e in drain_queue(events) if e.kind == AMP_ERROR] == ["set_volume"]
    assert "read back 5" in result.amp_errors[0]


def test_exception_reply_during_setup_is_reported(modbus_amp, modbus_sim, events):
    modbus_sim.refuse("power", 4)
    with PlaybackSequencer(modbus_amp, NullSink(), QUIET, on_event=events.put) as sequencer:
        result = sequencer.play(iter(tone()))
    assert result.completed
    assert "Modbus exception 4" in result.amp_errors[0]


def test_fault_polling_reports_faults_recoveries_and_silence(modbus_amp, modbus_sim, pty_pair, events):
    with PlaybackSequencer(modbus_amp, NullSink(), QUIET, on_event=events.put) as sequencer:
        modbus_sim.set_faults(("overload",))
        assert sequencer.poll_now().faults == ("overload",)
        modbus_sim.set_faults(())
        sequencer.poll_now()
        pty_pair.cut()
        assert sequencer.poll_now() is None
        assert sequencer.poll_now() is None  # reported once
        pty_pair.reconnect()
        sequencer.poll_now()
    reported = drain_queue(events)
    assert [e.kind for e in reported] == [AMP_FAULT, AMP_RECOVERED, AMP_UNREACHABLE, AMP_REACHABLE]
    assert reported[0].faults == ("overload",) and reported[0].state.temperature_c == pytest.approx(35.0)
    payload = reported[0].as_dict()
    assert payload["kind"] == "amp_fault" and payload["faults"] == ["overload"]
    assert payload["amplifier"]["temperature_c"] == pytest.approx(35.0) and payload["amplifier"]["powered"] is False
    json.dumps([event.as_dict() for event in reported])


def test_background_polling_thread_emits_fault_events(modbus_amp, modbus_sim, events):
    config = PlaybackConfig(warmup_s=0.0, fault_poll_interval_s=0.02)
    modbus_sim.set_faults(("mains_fail", "battery_low"))
    with PlaybackSequencer(modbus_amp, NullSink(), config, on_event=events.put):
        event = events.get(timeout=5)
    assert event.kind == AMP_FAULT and event.faults == ("mains_fail", "battery_low")


def test_a_failing_event_callback_does_not_stop_playback(modbus_amp):
    def broken(event):
        raise RuntimeError("callback bug")

    with PlaybackSequencer(modbus_amp, NullSink(), QUIET, on_event=broken) as sequencer:
        assert sequencer.play(iter(tone())).completed


def test_ascii_amplifier_sequence(ascii_amp, ascii_sim):
    with PlaybackSequencer(ascii_amp, NullSink(), QUIET) as sequencer:
        assert sequencer.play(iter(tone()), emergency=True, zones=[1])
    assert drain_queue(ascii_sim.writes) == [
        ("power", True), ("zones", 1), ("emergency", True), ("volume", 100), ("mute", False),
        ("mute", True), ("emergency", False),
    ]


def test_warmup_waits_after_power_on_and_preemption_cuts_it_short(modbus_amp, modbus_sim):
    config = PlaybackConfig(warmup_s=30.0, fault_poll_interval_s=0.0)
    cancel = threading.Event()
    results = []
    with PlaybackSequencer(modbus_amp, NullSink(), config) as sequencer:
        player = threading.Thread(target=lambda: results.append(sequencer.play(iter(tone()), cancel=cancel)))
        player.start()
        assert modbus_sim.writes.get(timeout=5).function == "power"  # now warming up
        cancel.set()
        player.join(timeout=5)
    assert results[0].preempted and results[0].samples == 0
    assert [w.function for w in drain_queue(modbus_sim.writes)] == ["mute"]  # made safe, nothing else


def test_preempt_does_not_wait_for_a_slow_amplifier(modbus_amp, pty_pair, events):
    """With the bus dead, power_on takes the whole timeout budget; preempt() returns at once and the playback ends."""
    pty_pair.cut()
    sink = NullSink()
    results = []
    with PlaybackSequencer(modbus_amp, sink, QUIET, on_event=events.put) as sequencer:
        started = threading.Event()

        def chunks():
            started.set()
            yield from tone()

        player = threading.Thread(target=lambda: results.append(sequencer.play(chunks())))
        player.start()
        assert events.get(timeout=5).kind == PLAYBACK_STARTED  # now blocked in power_on on the dead bus
        sequencer.preempt()
        player.join(timeout=5)
    assert results[0].preempted and sink.samples_written == 0 and not started.is_set()


def test_polling_period_comes_from_the_profile_by_default(pty_pair, modbus_profile, modbus_sim, events):
    import dataclasses

    profile = dataclasses.replace(modbus_profile, timing=dataclasses.replace(modbus_profile.timing, poll_interval_s=0.02))
    amp = ModbusRtuAmplifier(profile, pty_pair.host_path)
    modbus_sim.set_faults(("short_circuit",))
    try:
        with PlaybackSequencer(amp, NullSink(), PlaybackConfig(warmup_s=0.0), on_event=events.put):
            assert events.get(timeout=5).faults == ("short_circuit",)
    finally:
        amp.close()


def test_a_cancel_between_chunks_aborts_the_sink_once(modbus_amp):
    """A cancel between two chunks drops what the sink holds, once, whichever of the chunk loop and the cancel
    watcher thread sees it first."""
    cancel = threading.Event()

    def chunks():
        pieces = tone()
        yield pieces[0]
        cancel.set()  # pre-empted between two chunks
        yield from pieces[1:]

    sink = NullSink()
    with PlaybackSequencer(modbus_amp, sink, QUIET) as sequencer:
        result = sequencer.play(chunks(), cancel=cancel)
    assert result.preempted and sink.samples_written == tone()[0].size and sink.aborts == 1
