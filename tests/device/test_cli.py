"""`skyvoice sim-amp --pty` as a real subprocess, and `skyvoice amp ...` field checks against it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from runtime.cli import main
from tests.device.conftest import PROFILES

MODBUS = str(PROFILES / "generic-modbus-rtu.toml")


@pytest.fixture
def sim_amp_process():
    process = subprocess.Popen(
        [sys.executable, "-m", "runtime.cli", "sim-amp", "--profile", MODBUS, "--pty"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=PROFILES.parents[1],
    )
    try:
        port = process.stdout.readline().strip()  # the first line is the box's end of the pty pair
        assert port.startswith("/dev/"), process.stderr.read()
        yield port
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0


def test_amp_commands_against_sim_amp(sim_amp_process, capsys):
    port = sim_amp_process
    assert main(["amp", "on", "--profile", MODBUS, "--port", port]) == 0
    assert main(["amp", "volume", "45", "--profile", MODBUS, "--port", port]) == 0
    assert main(["amp", "unmute", "--profile", MODBUS, "--port", port]) == 0
    capsys.readouterr()
    assert main(["amp", "status", "--profile", MODBUS, "--port", port]) == 0
    out = capsys.readouterr().out
    assert "powered:     yes" in out and "volume:      45 %" in out and "muted:       no" in out
    assert "temperature: 35.0 °C" in out
    assert main(["amp", "off", "--profile", MODBUS, "--port", port]) == 0
    assert "powered:     no (standby)" in capsys.readouterr().out


def test_amp_reports_a_dead_port_as_a_user_error(tmp_path, capsys):
    assert main(["amp", "status", "--profile", MODBUS, "--port", str(tmp_path / "ttyGONE")]) == 2
    assert "cannot open serial port" in capsys.readouterr().err


def test_amp_volume_needs_a_percentage(capsys):
    assert main(["amp", "volume", "--profile", MODBUS, "--port", "/dev/null"]) == 2
    assert "needs a percentage 0..100" in capsys.readouterr().err


def test_amp_with_a_broken_profile_names_the_key(tmp_path, capsys):
    profile = tmp_path / "amp.toml"
    profile.write_text('name = "x"\nprotocol = "modbus_rtu"\ncolour = "red"\n[modbus]\ndevice_id = 1\n'
                       '[modbus.volume]\naddress = 0\n')
    assert main(["amp", "status", "--profile", str(profile), "--port", "/dev/null"]) == 2
    assert "unknown key 'colour'" in capsys.readouterr().err


def test_sim_amp_needs_a_port_or_pty():
    with pytest.raises(SystemExit):
        main(["sim-amp", "--profile", MODBUS])


def test_null_profile_needs_no_port(tmp_path, capsys):
    profile = tmp_path / "none.toml"
    profile.write_text('name = "none"\nprotocol = "null"\n')
    assert main(["amp", "on", "--profile", str(profile)]) == 0
    assert "powered:     yes" in capsys.readouterr().out
    assert os.path.exists(profile)
