"""ModbusRtuAmplifier against pymodbus's own server on a pty pair: writes, read-back, exceptions, silence."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from device.errors import AmplifierFault, AmplifierUnreachable, ReadBackMismatch
from device.modbus_rtu import ModbusRtuAmplifier
from device.profiles import SerialSettings
from device.sim import ModbusWrite
from tests.device.conftest import FAST, drain_queue


def test_writes_are_read_back_and_state_is_decoded(modbus_amp, modbus_sim):
    modbus_amp.power_on()
    modbus_amp.set_zones([2, 4])
    modbus_amp.set_volume(63)
    modbus_amp.unmute()
    modbus_amp.set_emergency(True)
    assert [(w.function, w.table, w.address, w.value) for w in drain_queue(modbus_sim.writes)] == [
        ("power", "coil", 0, 1),
        ("zones", "holding", 1, 0b1010),
        ("volume", "holding", 0, 63),
        ("mute", "coil", 1, 0),
        ("emergency", "coil", 2, 1),
    ]
    modbus_sim.set_faults(("over_temperature", "line_fault"))
    modbus_sim.set_temperature(-4.5)
    state = modbus_amp.read_state()
    assert state.powered and not state.muted and state.emergency
    assert state.volume_pct == 63 and state.zones == (2, 4)
    assert state.faults == ("over_temperature", "line_fault")
    assert state.temperature_c == pytest.approx(-4.5)


def test_read_back_mismatch_is_detected(modbus_amp, modbus_sim):
    modbus_sim.stick("volume", 12)
    with pytest.raises(ReadBackMismatch, match=r"wrote volume=80 to holding 0 but read back 12"):
        modbus_amp.set_volume(80)
    assert modbus_sim.writes.get_nowait() == ModbusWrite("volume", "holding", 0, 80)  # it did reach the amplifier


@pytest.mark.parametrize("code, name", [(2, "illegal data address"), (4, "server device failure"), (6, "server device busy")])
def test_exception_responses_name_the_function_and_code(modbus_amp, modbus_sim, code, name):
    modbus_sim.refuse("mute", code)
    with pytest.raises(AmplifierFault, match=rf"refused mute with Modbus exception {code} \({name}\)"):
        modbus_amp.mute()
    modbus_amp.set_volume(10)  # the bus is still usable afterwards


def test_address_outside_the_device_map_is_an_exception_reply(pty_pair, modbus_profile, modbus_sim):
    moved = dataclasses.replace(modbus_profile.modbus.volume, address=500)
    profile = dataclasses.replace(modbus_profile, modbus=dataclasses.replace(modbus_profile.modbus, volume=moved))
    amp = ModbusRtuAmplifier(profile, pty_pair.host_path)
    try:
        with pytest.raises(AmplifierFault, match=r"Modbus exception 2 \(illegal data address\)"):
            amp.set_volume(50)
    finally:
        amp.close()


def test_dead_bus_times_out_within_the_profile_budget(modbus_amp, pty_pair):
    modbus_amp.power_on()
    pty_pair.cut()
    started = time.monotonic()
    with pytest.raises(AmplifierUnreachable, match=r"did not answer power after 2 tries of 0.15 s"):
        modbus_amp.standby()
    budget = FAST.response_timeout_s * (FAST.retries + 1)
    assert time.monotonic() - started < budget + 1.0
    pty_pair.reconnect()
    modbus_amp.standby()  # recovers without reopening anything


def test_corrupted_replies_count_as_no_answer(modbus_amp, pty_pair):
    pty_pair.tamper = lambda data: data[:-1] + bytes([data[-1] ^ 0xFF])  # break the CRC
    with pytest.raises(AmplifierUnreachable):
        modbus_amp.set_volume(30)
    pty_pair.tamper = None
    modbus_amp.set_volume(30)


def test_wrong_device_id_is_unreachable(pty_pair, modbus_profile, modbus_sim):
    other = dataclasses.replace(modbus_profile, modbus=dataclasses.replace(modbus_profile.modbus, device_id=9))
    amp = ModbusRtuAmplifier(other, pty_pair.host_path)
    try:
        with pytest.raises(AmplifierUnreachable, match=r"device 9 on"):
            amp.read_state()
    finally:
        amp.close()


def test_missing_port_is_unreachable(tmp_path, modbus_profile):
    amp = ModbusRtuAmplifier(modbus_profile, str(tmp_path / "ttyNONE"))
    with pytest.raises(AmplifierUnreachable, match="cannot open serial port"):
        amp.power_on()


def test_kernel_rs485_mode_on_a_pty_is_refused_with_the_fix(pty_pair, modbus_sim, modbus_profile):
    profile = dataclasses.replace(modbus_profile, serial=SerialSettings(rs485_mode=True))
    amp = ModbusRtuAmplifier(profile, pty_pair.host_path)
    with pytest.raises(AmplifierFault, match="does not support kernel RS485 mode.*set serial.rs485_mode = false"):
        amp.power_on()
    amp.close()


def test_polling_never_interleaves_with_commands(modbus_amp, modbus_sim):
    """A poller hammering read_state while commands run: every frame gets its own answer, nothing fails."""
    stop = threading.Event()
    errors: list[BaseException] = []
    polls = []

    def poll() -> None:
        while not stop.is_set():
            try:
                polls.append(modbus_amp.read_state())
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)
                return

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        for volume in range(0, 100, 9):
            modbus_amp.set_volume(volume)
            modbus_amp.mute()
            modbus_amp.unmute()
    finally:
        stop.set()
        poller.join(timeout=10)
    assert not errors
    assert polls, "the poller ran"
    assert [w.value for w in drain_queue(modbus_sim.writes) if w.function == "volume"] == list(range(0, 100, 9))


def test_write_multiple_registers_profile(pty_pair, modbus_profile, modbus_sim):
    profile = dataclasses.replace(modbus_profile, modbus=dataclasses.replace(modbus_profile.modbus, write_function=16))
    amp = ModbusRtuAmplifier(profile, pty_pair.host_path)
    try:
        amp.set_volume(77)
        amp.set_zones([5])
    finally:
        amp.close()
    assert [(w.function, w.value) for w in drain_queue(modbus_sim.writes)] == [("volume", 77), ("zones", 16)]


def test_inter_frame_gap_is_kept_between_frames(pty_pair, modbus_profile, modbus_sim):
    """With a 60 ms gap, each request starts at least 60 ms after the previous frame on the line ended."""
    gap = 0.06
    profile = dataclasses.replace(modbus_profile, timing=dataclasses.replace(FAST, inter_frame_gap_s=gap))
    seen: list[tuple[str, float]] = []
    pty_pair.trace = lambda sender, data: seen.append((sender, time.monotonic()))
    amp = ModbusRtuAmplifier(profile, pty_pair.host_path)
    try:
        amp.set_volume(20)  # write + read-back: two requests
        amp.mute()
    finally:
        amp.close()
    requests = [i for i, (sender, _) in enumerate(seen) if sender == "host" and (i == 0 or seen[i - 1][0] == "amp")]
    assert len(requests) == 4
    for index in requests[1:]:
        assert seen[index][1] - seen[index - 1][1] >= gap - 0.005  # the relay adds no delay of its own


@pytest.mark.skipif(not __import__("shutil").which("socat"), reason="socat is not installed")
def test_over_a_socat_pty_pair(tmp_path, modbus_profile):
    """The same driver and server over socat's ptys (what a technician uses on the bench)."""
    import subprocess

    from device.sim import ModbusAmplifierSim

    amp_end, host_end = tmp_path / "ttyAMP", tmp_path / "ttyHOST"
    socat = subprocess.Popen(
        ["socat", "-d", "-d", f"pty,raw,echo=0,link={amp_end}", f"pty,raw,echo=0,link={host_end}"],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        for line in socat.stderr:  # socat logs each pty it created; the second means both links exist
            if "starting data transfer loop" in line:
                break
        with ModbusAmplifierSim(modbus_profile, str(amp_end)) as sim:
            amp = ModbusRtuAmplifier(modbus_profile, str(host_end))
            try:
                amp.power_on()
                amp.set_volume(66)
                assert amp.read_state().volume_pct == 66
            finally:
                amp.close()
            assert [w.function for w in drain_queue(sim.writes)] == ["power", "volume"]
    finally:
        socat.terminate()
        socat.wait(timeout=5)


def test_a_lost_reply_is_retried_and_succeeds(modbus_amp, modbus_sim, pty_pair):
    """The first answer is lost on the line: the driver times out once, asks again, and the write completes."""
    host_frames = []
    pty_pair.trace = lambda sender, data: host_frames.append(data) if sender == "host" else None
    pty_pair.tamper = lambda data: b"" if len(host_frames) == 1 else data  # swallow the reply to the first request
    modbus_amp.set_volume(48)
    assert host_frames[0] == host_frames[1], "the same request was sent twice"
    assert [(w.function, w.value) for w in drain_queue(modbus_sim.writes)] == [("volume", 48), ("volume", 48)]
