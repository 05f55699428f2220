"""AsciiLineAmplifier against a scripted peer (exact lines, unsolicited updates, silence) and the ASCII simulator."""

from __future__ import annotations

import dataclasses
import threading

import pytest
import serial

from device.ascii_line import AsciiLineAmplifier
from device.errors import AmplifierFault, AmplifierUnreachable, ReadBackMismatch
from device.profiles import load_profile
from tests.device.conftest import PROFILES, fast


class ScriptedPeer:
    """Reads lines on the amplifier's end of the pty and answers from a fixed script of (expected line, replies)."""

    def __init__(self, path: str, script: list[tuple[str, list[str]]], terminator: bytes = b"\r") -> None:
        self.port = serial.serial_for_url(path, baudrate=19200, timeout=5.0)
        self.script = list(script)
        self.terminator = terminator
        self.received: list[str] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for expected, replies in self.script:
                line = self.port.read_until(self.terminator)
                if not line.endswith(self.terminator):
                    return
                self.received.append(line[: -len(self.terminator)].decode("ascii"))
                if self.received[-1] != expected:
                    return
                for reply in replies:
                    self.port.write(reply.encode("ascii") + self.terminator)
        finally:
            self.done.set()

    def finish(self) -> list[str]:
        assert self.done.wait(5.0)
        self.port.close()
        return self.received


@pytest.fixture
def amd_profile():
    return fast(load_profile(PROFILES / "australian-monitor-amd.toml"))


def test_amd_protocol_exact_lines_with_unsolicited_updates(pty_pair, amd_profile):
    script = [
        ("%PVAL:0CC9", []),  # 100 % = 0 dB = 0xC9; writes are not acknowledged
        ("%PVAL:0C??", ["%PFLG=0901", "%PVAL=0CC9"]),  # an unsolicited BGM mute update first: skipped
        ("%PFLG:0C00", []),
        ("%PFLG:0C??", ["%PFLG=0C00"]),
        ("%PGRN:02", []),
        ("%PGRN:??", ["%PGRN=02"]),
        ("%PFLG:0C??", ["%PFLG=0C00"]),  # read_state: mute, emergency, volume, faults
        ("%PGRN:??", ["%PGRN=02"]),
        ("%PVAL:0C??", ["%PVAL=0C79"]),
        ("%PAMP=??", ["%PAMP=01"]),
    ]
    peer = ScriptedPeer(pty_pair.amp_path, script)
    amp = AsciiLineAmplifier(amd_profile, pty_pair.host_path)
    try:
        amp.power_on()  # the AMD profile has no power command: nothing is sent
        amp.set_volume(100)
        amp.unmute()
        amp.set_emergency(True)
        state = amp.read_state()
    finally:
        amp.close()
    assert peer.finish() == [line for line, _ in script]
    assert state.powered and not state.muted and state.emergency
    assert state.volume_pct == 0 and state.faults == ("thermal_shutdown",)


def test_read_back_mismatch_from_scripted_peer(pty_pair, amd_profile):
    peer = ScriptedPeer(pty_pair.amp_path, [("%PFLG:0C01", []), ("%PFLG:0C??", ["%PFLG=0C00"])])
    amp = AsciiLineAmplifier(amd_profile, pty_pair.host_path)
    with pytest.raises(ReadBackMismatch, match="set mute to '01' but read back '00'"):
        amp.mute()
    amp.close()
    peer.finish()


def test_silent_peer_is_retried_then_unreachable(pty_pair, amd_profile):
    script = [("%PAMP=??", []), ("%PAMP=??", [])]  # asked twice (retries = 1), never answered
    peer = ScriptedPeer(pty_pair.amp_path, script)
    amp = AsciiLineAmplifier(dataclasses.replace(amd_profile, ascii=dataclasses.replace(
        amd_profile.ascii, power=None, mute=None, emergency=None, volume=dataclasses.replace(
            amd_profile.ascii.volume, query=None, reply=None))), pty_pair.host_path)
    with pytest.raises(AmplifierUnreachable, match=r"did not answer faults \('%PAMP=\?\?'\) after 2 tries"):
        amp.read_state()
    amp.close()
    assert peer.finish() == ["%PAMP=??", "%PAMP=??"]


def test_generic_ascii_against_the_simulator(ascii_amp, ascii_sim):
    ascii_amp.power_on()
    ascii_amp.set_volume(35)
    ascii_amp.set_zones([2, 3])
    ascii_amp.unmute()
    ascii_sim.set_fault("9")
    ascii_sim.set_temperature("51.5")
    state = ascii_amp.read_state()
    assert state.powered and not state.muted and state.volume_pct == 35 and state.zones == (2, 3)
    assert state.faults == ("over_temperature", "line_fault") and state.temperature_c == pytest.approx(51.5)


def test_refusal_is_a_fault_naming_the_reason(ascii_amp, ascii_sim):
    ascii_sim.refuse("emergency")
    with pytest.raises(AmplifierFault, match=r"refused emergency \('EMER 1' → 'emergency refused'\)"):
        ascii_amp.set_emergency(True)


def test_stuck_value_is_a_read_back_mismatch(ascii_amp, ascii_sim):
    ascii_sim.stick("volume", "7")
    with pytest.raises(ReadBackMismatch, match="set volume to 90 but read back 7"):
        ascii_amp.set_volume(90)


def test_silent_simulator_times_out(ascii_amp, ascii_sim):
    ascii_sim.silent = True
    with pytest.raises(AmplifierUnreachable, match=r"did not answer power \('PWR 1'\) after 2 tries of 0.15 s"):
        ascii_amp.power_on()
    ascii_sim.silent = False
    ascii_amp.power_on()


def test_inter_frame_gap_is_kept_between_lines(pty_pair, ascii_profile, ascii_sim):
    import time

    gap = 0.06
    profile = dataclasses.replace(ascii_profile, timing=dataclasses.replace(ascii_profile.timing, inter_frame_gap_s=gap))
    seen: list[tuple[str, float]] = []
    pty_pair.trace = lambda sender, data: seen.append((sender, time.monotonic()))
    amp = AsciiLineAmplifier(profile, pty_pair.host_path)
    try:
        amp.set_volume(20)  # VOL 20 → OK, VOL? → VOL 20
    finally:
        amp.close()
    starts = [i for i, (sender, _) in enumerate(seen) if sender == "host" and (i == 0 or seen[i - 1][0] == "amp")]
    assert len(starts) == 2
    assert seen[starts[1]][1] - seen[starts[1] - 1][1] >= gap - 0.005
