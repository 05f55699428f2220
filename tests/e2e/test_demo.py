"""`skyvoice demo` end to end, with mosquitto and with the embedded broker (a fresh machine without mosquitto)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("broker_choice", ["mosquitto", "embedded"])
def test_demo_speaks_and_plays_a_signed_alert(broker_choice, tmp_path, request):
    if broker_choice == "mosquitto":
        request.getfixturevalue("broker")  # skips when mosquitto is not installed
    out = tmp_path / "demo.wav"
    result = subprocess.run(
        [sys.executable, "-m", "runtime.cli", "demo", "--broker", broker_choice, "--out", str(out), "--timeout", "60"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    acks = [json.loads(line.split(" ", 3)[3]) for line in result.stdout.splitlines() if "/evt/ack " in line]
    finished = {(ack["id"], ack["state"]) for ack in acks}
    assert {("demo-speak-1", "done"), ("demo-alert-1", "done")} <= finished
    assert soundfile.info(str(out)).duration > 3.0
    writes = next(line for line in result.stdout.splitlines() if line.startswith("amplifier writes:"))
    assert "power=1" in writes and "mute=0" in writes  # the simulated Modbus amplifier was driven
