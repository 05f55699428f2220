"""The service in-process, with the MQTT side replaced by a recording publisher (the edge): local trigger,
pre-emption within 200 ms, voice and status commands."""

from __future__ import annotations

import json
import queue
import threading
import time

import pytest

from daemon_docs import alert_doc, payload, signed, speak_doc
from runtime.daemon.config import config_from_dict
from runtime.daemon.service import Service
from runtime.daemon.topics import Topics
from runtime.keys import generate_keypair, load_private_key

BOX = "unit-box"
TOPICS = Topics(BOX)


class TimedSink:
    """The true edge (no sound card): a null sink that tells when audio first reached it and remembers when playback
    was aborted."""

    def __init__(self):
        from device.sinks import NullSink

        from runtime.daemon.paced_sink import PacedSink

        self.aborted_at = None
        self.writing = threading.Event()
        self._inner = PacedSink(NullSink())

    def open(self, rate):
        self._inner.open(rate)

    def write(self, samples):
        self.writing.set()
        self._inner.write(samples)

    def drain(self):
        self._inner.drain()

    def abort(self):
        self.aborted_at = time.monotonic()
        self._inner.abort()

    def close(self):
        self._inner.close()


class RecordingPublisher:
    def __init__(self):
        self.messages: "queue.Queue[tuple[str, dict, bool]]" = queue.Queue()
        self.seen: list[tuple[str, dict, bool]] = []

    def publish(self, topic, payload, *, retain=False):
        self.messages.put((topic, json.loads(payload), retain))

    def wait_ack(self, command_id, state, timeout=20.0):
        return self.wait(lambda t, e: t == TOPICS.ack and e["id"] == command_id and e["state"] == state, timeout)

    def wait(self, predicate, timeout=20.0):
        for topic, event, _ in self.seen:
            if predicate(topic, event):
                return event
        deadline = time.monotonic() + timeout
        while True:
            topic, event, retain = self.messages.get(timeout=max(0.001, deadline - time.monotonic()))
            self.seen.append((topic, event, retain))
            if predicate(topic, event):
                return event


def service_config(tmp_path, **extra):
    """A box with a trusted operator key (its private half returned), a null realtime sink and one standard alert."""
    private, _ = generate_keypair(tmp_path / "trusted", "op")
    config = config_from_dict(
        {
            "box_id": BOX,
            "store": {"path": str(tmp_path / "c.db")},
            "security": {"trusted_keys_dir": str(tmp_path / "trusted")},
            "playback": {"sample_rate_hz": 16000},
            "audio": {"sink": "null", "realtime": True},
            "telemetry": {"interval_s": 3600.0},
            "standard_alerts": [{"name": "evacuate", "text": "Evacuate now.", "status": "Actual", "repeat": 1}],
            **extra,
        }
    )
    return config, private


@pytest.fixture
def service(tmp_path):
    config, private = service_config(tmp_path)
    key = load_private_key(private)
    private.rename(tmp_path / "op.key")
    publisher = RecordingPublisher()
    sink = TimedSink()
    running = Service(config, publisher=publisher, sink=sink)
    running.sink = sink
    running.start()
    running.publisher, running.key = publisher, key
    yield running
    running.stop()


def test_software_trigger_plays_a_standard_alert(service):
    command_id = service.trigger.fire("evacuate")
    for state in ("queued", "playing", "done"):
        service.publisher.wait_ack(command_id, state)


def test_alert_preempts_a_speak_within_200_ms(service):
    speak = speak_doc("A long announcement about the weather and the state of the sea today. " * 3)
    service.handle_message(TOPICS.command("speak"), payload(speak))
    service.publisher.wait_ack(speak["id"], "playing")
    assert service.sink.writing.wait(20.0), "the speak never reached the sink"
    alert = signed(alert_doc("Fire on deck three.", priority=240), "alert", service.key)
    started = time.monotonic()
    service.handle_message(TOPICS.command("alert"), payload(alert))
    service.publisher.wait_ack(speak["id"], "preempted")
    assert service.sink.aborted_at - started < 0.2
    service.publisher.wait_ack(alert["id"], "playing")


def test_status_and_voice_commands(service):
    now = speak_doc()["issued_at"]
    service.handle_message(TOPICS.command("status"), payload({"id": "s-1", "issued_at": now}))
    service.publisher.wait_ack("s-1", "done")
    status = service.publisher.wait(lambda t, e: t == TOPICS.status and e["state"] == "online")
    assert status["voice"] == "fallback" and status["standard_alerts"] == ["evacuate"]
    voice = signed({"id": "v-1", "issued_at": now, "pack": "/nonexistent/pack.svvoice"}, "voice", service.key)
    service.handle_message(TOPICS.command("voice"), payload(voice))  # queued at once, installed in its own thread
    service.publisher.wait_ack("v-1", "queued")
    event = service.publisher.wait(lambda t, e: t == TOPICS.ack and e["id"] == "v-1" and e["state"] != "queued")
    assert event["state"] in ("failed", "rejected") and event["reason"]


CAP_TEMPLATE = """<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>{identifier}</identifier>
<sender>ops@example.org</sender><sent>2026-12-02T04:00:00-00:00</sent><status>Test</status><msgType>{msg_type}</msgType>
<scope>Public</scope>{references}<info><category>Safety</category><event>Drill</event><urgency>Immediate</urgency>
<severity>Minor</severity><certainty>Observed</certainty><headline>{headline}</headline></info></alert>"""


def test_cap_cancel_stops_the_referenced_alert(service):
    cap_alert = CAP_TEMPLATE.format(identifier="DRILL-1", msg_type="Alert", references="",
                                    headline="A long drill announcement for every crew member on every deck " * 3)
    alert = alert_doc(priority=240)
    del alert["text"], alert["status"]
    alert["cap"] = cap_alert
    alert = signed(alert, "alert", service.key)
    service.handle_message(TOPICS.command("alert"), payload(alert))
    service.publisher.wait_ack(alert["id"], "playing")
    cancel = alert_doc(priority=240)
    del cancel["text"], cancel["status"]
    cancel["cap"] = CAP_TEMPLATE.format(identifier="DRILL-2", msg_type="Cancel", headline="",
                                        references="<references>ops@example.org,DRILL-1,2026-12-02T04:00:00-00:00</references>")
    cancel = signed(cancel, "alert", service.key)
    service.handle_message(TOPICS.command("alert"), payload(cancel))
    service.publisher.wait_ack(cancel["id"], "done")
    assert "DRILL-2" not in str(service.publisher.wait_ack(alert["id"], "cancelled"))


def test_an_accepted_voice_install_resumes_after_a_restart(service):
    """A cmd/voice stored before a stop (acked queued, not yet installed) is installed by the next start."""
    now = speak_doc()["issued_at"]
    voice = signed({"id": "v-restart", "issued_at": now, "pack": "/nonexistent/pack.svvoice"}, "voice", service.key)
    raw = payload(voice)
    config, publisher = service.config, RecordingPublisher()
    service.stop()
    from runtime.daemon.command_store import CommandStore

    store = CommandStore(config.store.path)
    assert store.add("v-restart", "voice", raw)
    store.close()
    again = Service(config, publisher=publisher, sink=TimedSink())
    again.start()
    try:
        event = publisher.wait(lambda t, e: t == TOPICS.ack and e["id"] == "v-restart")
        assert event["state"] == "failed" and event["reason"]  # this box has no bundle: the install ran and said why
    finally:
        again.stop()


class FakeJetsonGpio:
    """The true edge (no GPIO header here): Jetson.GPIO's calls, recorded; `edge` plays the library's event thread."""

    BOARD, IN, FALLING = "BOARD", "IN", "FALLING"

    def __init__(self):
        self.calls: list[tuple] = []
        self.callbacks: dict[int, object] = {}

    def setmode(self, mode):
        self.calls.append(("setmode", mode))

    def setup(self, pin, direction):
        self.calls.append(("setup", pin, direction))

    def add_event_detect(self, pin, edge, callback, bouncetime):
        self.calls.append(("add_event_detect", pin, edge, bouncetime))
        self.callbacks[pin] = callback

    def remove_event_detect(self, pin):
        self.calls.append(("remove_event_detect", pin))
        self.callbacks.pop(pin, None)

    def cleanup(self, pin):
        self.calls.append(("cleanup", pin))

    def edge(self, pin):
        import threading

        thread = threading.Thread(target=self.callbacks[pin], args=(pin,))
        thread.start()
        thread.join(timeout=10)


def test_a_falling_edge_on_the_gpio_pin_plays_its_standard_alert(tmp_path, monkeypatch):
    """`local_trigger.gpio_pin`: the service arms the pin (BOARD numbering, falling edge, debounced) on start, an edge
    queues and plays the configured standard alert, and stop releases the pin."""
    import sys
    import types

    gpio = FakeJetsonGpio()
    package = types.ModuleType("Jetson")
    package.GPIO = gpio
    monkeypatch.setitem(sys.modules, "Jetson", package)
    monkeypatch.setitem(sys.modules, "Jetson.GPIO", gpio)
    config, _ = service_config(tmp_path, local_trigger={"gpio_pin": 7, "gpio_alert": "evacuate"})
    publisher = RecordingPublisher()
    running = Service(config, publisher=publisher, sink=TimedSink())
    running.start()
    try:
        assert ("setmode", "BOARD") in gpio.calls and ("setup", 7, "IN") in gpio.calls
        assert any(c[:3] == ("add_event_detect", 7, "FALLING") for c in gpio.calls)
        gpio.edge(7)
        queued = publisher.wait(lambda t, e: t == TOPICS.ack and e["state"] == "queued" and str(e["id"]).startswith("local-evacuate-"))
        publisher.wait_ack(queued["id"], "done")
    finally:
        running.stop()
    assert ("remove_event_detect", 7) in gpio.calls and ("cleanup", 7) in gpio.calls
