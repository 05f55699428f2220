"""A real mosquitto on a free 127.0.0.1 port for the whole run; the daemon as a subprocess; mosquitto_sub/_pub as clients."""

from __future__ import annotations

import itertools
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import pytest

from runtime.daemon.local_broker import LocalBroker
from runtime.daemon.topics import Topics
from runtime.keys import generate_keypair, load_private_key

REPO = Path(__file__).resolve().parents[2]
_BOX_NUMBERS = itertools.count(1)


def _need(program: str) -> None:
    if shutil.which(program) is None and not Path(f"/usr/sbin/{program}").exists():
        pytest.skip(f"{program} is not installed (scripts/setup installs mosquitto, mosquitto-clients, espeak-ng)")


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    for program in ("mosquitto", "mosquitto_pub", "mosquitto_sub", "espeak-ng"):
        _need(program)
    running = LocalBroker(tmp_path_factory.mktemp("broker")).start()
    yield running
    running.stop()


class EventStream:
    """`mosquitto_sub` on skyvoice/<box>/evt/#; every event lands in a queue and in `events`."""

    def __init__(self, port: int, topics: Topics):
        self.topics = topics
        self.events: list[tuple[str, dict]] = []
        self.redelivered = 0
        self._queue: "queue.Queue[tuple[str, dict]]" = queue.Queue()
        self.process = subprocess.Popen(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-V", "mqttv5", "-v",
             "-t", f"{topics.base}/evt/#"],
            stdout=subprocess.PIPE, text=True,
        )
        threading.Thread(target=self._read, name="mosquitto-sub-reader", daemon=True).start()

    def _read(self) -> None:
        seen_acks: set[str] = set()
        for line in self.process.stdout:
            topic, _, payload = line.rstrip("\n").partition(" ")
            if topic == self.topics.ack:
                # QoS 1 is at-least-once: an ack re-sent after a lost PUBACK arrives twice, byte for byte
                # (same `seq` and `at`). Any new event, a second playback included, has another `seq`.
                if payload in seen_acks:
                    self.redelivered += 1
                    continue
                seen_acks.add(payload)
            try:
                event = json.loads(payload)
            except ValueError:
                continue
            self._queue.put((topic, event))

    def wait_for(self, predicate: Callable[[str, dict], bool], timeout: float = 20.0, start: int = 0) -> dict:
        for topic, event in self.events[start:]:
            if predicate(topic, event):
                return event
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching event within {timeout} s; saw {self.events[-8:]}")
            try:
                topic, event = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            self.events.append((topic, event))
            if predicate(topic, event):
                return event

    def wait_ack(self, command_id: Optional[str], state: str, timeout: float = 20.0) -> dict:
        return self.wait_for(
            lambda t, e: t == self.topics.ack and e.get("id") == command_id and e.get("state") == state, timeout
        )

    def wait_status(self, state: str, timeout: float = 20.0, start: int = 0) -> dict:
        return self.wait_for(lambda t, e: t == self.topics.status and e.get("state") == state, timeout, start)

    def mark(self) -> int:
        """An index into `events`: wait_status(start=mark) ignores what came before."""
        self.drain()
        return len(self.events)

    def drain(self) -> None:
        while True:
            try:
                self.events.append(self._queue.get_nowait())
            except queue.Empty:
                return

    def acks(self, command_id: Optional[str] = None) -> list[str]:
        self.drain()
        return [e["state"] for t, e in self.events if t == self.topics.ack and (command_id is None or e.get("id") == command_id)]

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=5)


class Box:
    """One daemon (`skyvoice serve`) with its config, store, trusted key and WAV output in a temp dir."""

    def __init__(self, broker: LocalBroker, work: Path, **overrides):
        self.broker = broker
        self.work = work
        self.box_id = f"e2e-{os.getpid()}-{next(_BOX_NUMBERS)}"
        self.topics = Topics(self.box_id)
        private, _ = generate_keypair(work / "trusted", "operator")
        self.key = load_private_key(private)
        private.rename(work / "operator.key")
        generate_keypair(work, "stranger")
        self.stranger = load_private_key(work / "stranger.key")
        self.wav = work / "out.wav"
        self.config_path = work / "box.toml"
        security = {"trusted_keys_dir": "trusted", "replay_window_s": 300.0}
        security.update(overrides.pop("security", {}))
        playback = {"sample_rate_hz": 16000, "requeue_preempted": True}
        playback.update(overrides.pop("playback", {}))
        mqtt = {"port": broker.port, "will_delay_s": 0, "keepalive_s": 10, "reconnect_max_s": 2.0}
        mqtt.update(overrides.pop("mqtt", {}))
        audio = {"sink": "wav", "wav_path": "out.wav", "realtime": True}
        audio.update(overrides.pop("audio", {}))
        amplifier = overrides.pop("amplifier", {"kind": "null"})
        tls = overrides.pop("tls", {})
        lines = [
            f'box_id = "{self.box_id}"',
            "[mqtt]", *[f"{k} = {_toml(v)}" for k, v in mqtt.items()],
            "[mqtt.tls]", *[f"{k} = {_toml(v)}" for k, v in tls.items()],
            "[store]", 'path = "commands.db"',
            "[security]", *[f"{k} = {_toml(v)}" for k, v in security.items()],
            "[playback]", *[f"{k} = {_toml(v)}" for k, v in playback.items()],
            "[audio]", *[f"{k} = {_toml(v)}" for k, v in audio.items()],
            "[amplifier]", *[f"{k} = {_toml(v)}" for k, v in amplifier.items()],
            "[telemetry]", "interval_s = 3600.0",
            "[[standard_alerts]]", 'name = "evacuate"', 'text = "Evacuate now."', 'status = "Actual"', "repeat = 1",
        ]
        self.config_path.write_text("\n".join(lines) + "\n")
        self.process: Optional[subprocess.Popen] = None
        self.stream = EventStream(broker.port, self.topics)

    def start(self) -> "Box":
        log = open(self.work / "daemon.log", "a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "runtime.cli", "-v", "serve", "--config", str(self.config_path)],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    def wait_online(self, timeout: float = 30.0, start: int = 0) -> None:
        """Online status arrives after the daemon subscribed (same connection): commands sent now reach it."""
        self.stream.wait_status("online", timeout, start)

    def kill9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def publish(self, kind: str, document, *, raw: Optional[bytes] = None) -> None:
        payload = raw if raw is not None else json.dumps(document).encode()
        subprocess.run(
            ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.broker.port), "-q", "1", "-V", "mqttv5",
             "-t", self.topics.command(kind), "-s"],
            input=payload, check=True, timeout=15,
        )

    def publish_lines(self, kind: str, payloads: list[bytes]) -> None:
        """Many messages through one mosquitto_pub (-l: one message per line)."""
        assert all(b"\n" not in p and p for p in payloads)
        subprocess.run(
            ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.broker.port), "-q", "1", "-V", "mqttv5",
             "-t", self.topics.command(kind), "-l"],
            input=b"\n".join(payloads) + b"\n", check=True, timeout=60,
        )

    def log(self) -> str:
        return (self.work / "daemon.log").read_text()


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


@pytest.fixture
def make_box(broker, tmp_path):
    boxes: list[Box] = []

    def make(**overrides) -> Box:
        work = tmp_path / f"box{len(boxes)}"
        work.mkdir()
        box = Box(overrides.pop("broker", broker), work, **overrides)
        boxes.append(box)
        return box

    yield make
    for box in boxes:
        box.stop()
        box.stream.close()


@pytest.fixture
def box(make_box):
    running = make_box().start()
    running.wait_online()
    yield running
