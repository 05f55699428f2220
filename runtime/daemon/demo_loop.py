"""`skyvoice demo`: a broker, the daemon (null amplifier, WAV sink), and an operator publishing a speak and a signed alert."""

from __future__ import annotations

import json
import queue
import tempfile
import time
from pathlib import Path

from runtime.daemon.config import config_from_dict
from runtime.daemon.envelope import format_time
from runtime.daemon.signatures import sign_document
from runtime.daemon.topics import Topics
from runtime.daemon.local_broker import LocalBroker
from runtime.daemon.mini_broker import MiniBroker
from runtime.errors import ConfigError, SkyvoiceError
from runtime.keys import generate_keypair, load_private_key

BOX_ID = "demo-box"
FINAL_STATES = ("done", "failed", "rejected", "expired", "cancelled", "duplicate")


def start_broker(work_dir: Path, choice: str):
    """mosquitto when installed (or asked for), else the embedded minimal broker."""
    if choice == "mosquitto" or choice == "auto":
        try:
            broker = LocalBroker(work_dir).start()
            print(f"broker: mosquitto on 127.0.0.1:{broker.port}")
            return broker
        except ConfigError as exc:
            if choice == "mosquitto":
                raise
            print(f"broker: {exc}; using the embedded minimal broker instead")
    broker = MiniBroker().start()
    print(f"broker: embedded minimal broker on 127.0.0.1:{broker.port}")
    return broker


SIM_PROFILE = Path(__file__).resolve().parents[2] / "configs" / "amplifiers" / "generic-modbus-rtu.toml"


class SimulatedAmplifier:
    """The device layer's Modbus RTU amplifier simulator on a pty pair; the daemon drives it like real hardware."""

    def __init__(self, profile_path: Path):
        from device.profiles import load_profile
        from device.sim import PtyPair, open_sim

        self.profile_path = profile_path
        self.pair = PtyPair()
        self.sim = open_sim(load_profile(profile_path), self.pair.amp_path)
        self.sim.start()

    @property
    def port(self) -> str:
        return self.pair.host_path

    def writes(self) -> list[str]:
        seen = []
        while True:
            try:
                write = self.sim.writes.get_nowait()
            except queue.Empty:
                return seen
            seen.append(f"{write.function}={write.value}")

    def stop(self) -> None:
        self.sim.stop()
        self.pair.close()


def start_amplifier(choice: str):
    """The simulated Modbus amplifier (needs the repository's configs/amplifiers), else none (NullAmplifier)."""
    if choice == "null":
        print("amplifier: none (NullAmplifier)")
        return None
    if not SIM_PROFILE.is_file():
        print(f"amplifier: profile {SIM_PROFILE} not found; using NullAmplifier")
        return None
    amplifier = SimulatedAmplifier(SIM_PROFILE)
    print(f"amplifier: simulated Modbus RTU amplifier ({SIM_PROFILE.name}) on {amplifier.port}")
    return amplifier


def run_demo(*, out_wav: str, bundle_dir: str = "", timeout_s: float = 120.0, broker_choice: str = "auto",
             amp_choice: str = "sim") -> int:
    from runtime.daemon.mqtt_link import OperatorClient
    from runtime.daemon.service import Service

    out_wav_path = Path(out_wav).resolve()
    if out_wav_path.exists():
        out_wav_path.unlink()
    with tempfile.TemporaryDirectory(prefix="skyvoice-demo-") as work:
        work_dir = Path(work)
        broker = start_broker(work_dir, broker_choice)
        amplifier = start_amplifier(amp_choice)
        amp_config = (
            {"kind": "profile", "profile": str(amplifier.profile_path), "port": amplifier.port}
            if amplifier is not None
            else {"kind": "null"}
        )
        private_path, _ = generate_keypair(work_dir / "trusted", "operator")
        operator_key = load_private_key(private_path)
        private_path.rename(work_dir / "operator.key")  # the box trusts only the .pub
        config = config_from_dict(
            {
                "box_id": BOX_ID,
                "mqtt": {"port": broker.port, "will_delay_s": 0, "keepalive_s": 20},
                "store": {"path": str(work_dir / "commands.db")},
                "security": {"trusted_keys_dir": str(work_dir / "trusted")},
                "audio": {"sink": "wav", "wav_path": str(out_wav_path), "realtime": False},
                "voice": {"bundle_dir": bundle_dir},
                "amplifier": amp_config,
                "telemetry": {"interval_s": 3600.0},
            }
        )
        service = Service(config)
        operator = OperatorClient("127.0.0.1", broker.port, client_id="skyvoice-demo-operator")
        topics = Topics(BOX_ID)
        try:
            operator.connect(f"{topics.base}/evt/#")
            service.start()
            _wait_online(operator, topics, timeout_s)
            print(f"daemon: box {BOX_ID}, voice {'neural' if service.neural is not None else 'fallback (espeak-ng)'}, "
                  f"WAV sink {out_wav_path}")
            now = time.time()
            speak = {
                "id": "demo-speak-1",
                "issued_at": format_time(now),
                "expires_at": format_time(now + 300),
                "text": "Good morning. The ferry to the mainland leaves at ten o'clock.",
                "lang": "en",
            }
            alert = sign_document(
                {
                    "id": "demo-alert-1",
                    "issued_at": format_time(now),
                    "expires_at": format_time(now + 300),
                    "priority": 220,
                    "status": "Test",
                    "text": "Fire alarm on deck three. Go to your muster station.",
                },
                "alert",
                [operator_key],
            )
            for kind, document in (("speak", speak), ("alert", alert)):
                print(f"operator → {topics.command(kind)} id={document['id']}")
                operator.publish(topics.command(kind), json.dumps(document).encode())
            outcome = _print_events(operator, topics, {"demo-speak-1", "demo-alert-1"}, timeout_s)
        finally:
            operator.close()
            service.stop()
            broker.stop()
            if amplifier is not None:
                print("amplifier writes: " + " ".join(amplifier.writes()))
                amplifier.stop()
    if not all(state == "done" for state in outcome.values()):
        raise SkyvoiceError(f"demo did not finish cleanly: {outcome}; run with -v for the daemon's log")
    import soundfile

    info = soundfile.info(str(out_wav_path))
    print(f"audio: {out_wav_path} ({info.duration:.1f} s at {info.samplerate} Hz)")
    return 0


def _wait_online(operator, topics: Topics, timeout_s: float) -> None:
    """The daemon says online right after subscribing, on the same connection: commands sent now reach it."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            topic, payload = operator.messages.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise SkyvoiceError(f"the daemon did not come online within {timeout_s:.0f} s") from None
        print(f"event ← {topic} {payload.decode('utf-8', 'replace')}")
        if topic == topics.status and json.loads(payload).get("state") == "online":
            return


def _print_events(operator, topics: Topics, ids: set[str], timeout_s: float) -> dict[str, str]:
    outcome: dict[str, str] = {}
    deadline = time.monotonic() + timeout_s
    while set(outcome) != ids:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            topic, payload = operator.messages.get(timeout=remaining)
        except queue.Empty:
            break
        print(f"event ← {topic} {payload.decode('utf-8', 'replace')}")
        if topic == topics.ack:
            event = json.loads(payload)
            if event.get("id") in ids and event.get("state") in FINAL_STATES:
                outcome[event["id"]] = event["state"]
    return outcome
