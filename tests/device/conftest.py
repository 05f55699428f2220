"""Peers for the device tests: linked ptys, pymodbus's server as the Modbus amplifier, the ASCII simulator."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from device.profiles import AmplifierProfile, BusTiming, load_profile
from device.sim import AsciiAmplifierSim, ModbusAmplifierSim, PtyPair

PROFILES = Path(__file__).resolve().parents[2] / "configs" / "amplifiers"

# Short timeouts so a dead bus costs 0.3 s per command, not seconds.
FAST = BusTiming(inter_frame_gap_s=0.0, response_timeout_s=0.15, retries=1, warmup_s=0.0, poll_interval_s=60.0)


def fast(profile: AmplifierProfile) -> AmplifierProfile:
    return dataclasses.replace(profile, timing=FAST)


@pytest.fixture
def pty_pair():
    with PtyPair() as pair:
        yield pair


@pytest.fixture
def modbus_profile() -> AmplifierProfile:
    return fast(load_profile(PROFILES / "generic-modbus-rtu.toml"))


@pytest.fixture
def modbus_sim(pty_pair, modbus_profile):
    with ModbusAmplifierSim(modbus_profile, pty_pair.amp_path) as sim:
        yield sim


@pytest.fixture
def modbus_amp(pty_pair, modbus_profile, modbus_sim):
    from device.modbus_rtu import ModbusRtuAmplifier

    amp = ModbusRtuAmplifier(modbus_profile, pty_pair.host_path)
    yield amp
    amp.close()


@pytest.fixture
def ascii_profile() -> AmplifierProfile:
    return fast(load_profile(PROFILES / "generic-ascii.toml"))


@pytest.fixture
def ascii_sim(pty_pair, ascii_profile):
    with AsciiAmplifierSim(ascii_profile, pty_pair.amp_path) as sim:
        yield sim


@pytest.fixture
def ascii_amp(pty_pair, ascii_profile, ascii_sim):
    from device.ascii_line import AsciiLineAmplifier

    amp = AsciiLineAmplifier(ascii_profile, pty_pair.host_path)
    yield amp
    amp.close()


def drain_queue(q) -> list:
    items = []
    while not q.empty():
        items.append(q.get_nowait())
    return items
