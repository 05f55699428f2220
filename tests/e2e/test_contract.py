"""The MQTT contract against a real mosquitto, with mosquitto_pub/mosquitto_sub as the operator's clients."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime" / "daemon"))

from daemon_docs import alert_doc, signed, speak_doc  # noqa: E402
from test_envelope import FIELD_NAMES, json_values  # noqa: E402

LONG_TEXT = "This is a long announcement about the weather, the sea state and the ferry timetable for today. " * 2


def test_speak_is_queued_played_and_done(box):
    doc = speak_doc("Dinner is served in the mess.", reply_to=f"operators/replies/{box.box_id}")
    box.publish("speak", doc)
    for state in ("queued", "playing", "done"):
        box.stream.wait_ack(doc["id"], state)
    assert box.stream.acks(doc["id"]) == ["queued", "playing", "done"]


def test_status_request_then_kill_publishes_offline(box):
    doc = {"id": "status-1", "issued_at": speak_doc()["issued_at"]}
    mark = box.stream.mark()
    box.publish("status", doc)
    box.stream.wait_ack("status-1", "done")
    assert box.stream.wait_status("online", start=mark)["voice"] == "fallback"
    box.kill9()
    box.stream.wait_status("offline", start=mark)


def _malformed_payloads():
    """Payloads that can never be a valid speak: bytes, non-objects, unknown fields, bad values."""
    base = st.builds(lambda: speak_doc())
    unknown_field = st.text(min_size=1, max_size=12).filter(lambda k: k not in FIELD_NAMES)
    bad_values = {
        "priority": st.integers().filter(lambda v: not 0 <= v < 200) | st.text(max_size=5) | st.none(),
        "text": st.sampled_from(["", "   "]) | st.integers() | st.lists(st.text(max_size=3), max_size=2),
        "zones": st.lists(st.integers().filter(lambda v: not 1 <= v <= 64), min_size=1, max_size=3) | st.text(max_size=4),
        "issued_at": st.text(max_size=25) | st.floats(allow_nan=False) | st.none(),
        "volume": st.integers().filter(lambda v: not 0 <= v <= 100) | st.booleans(),
    }
    with_unknown = st.tuples(base, unknown_field, json_values).map(lambda t: {**t[0], t[1]: t[2]})
    with_bad_value = st.tuples(base, st.sampled_from(sorted(bad_values)), st.data()).map(
        lambda t: {**t[0], t[1]: t[2].draw(bad_values[t[1]])}
    )
    documents = (with_unknown | with_bad_value | json_values.filter(lambda v: not isinstance(v, dict)))
    as_json = documents.map(lambda d: json.dumps(d).encode())
    # mosquitto_pub -l sends one message per line and stops at a NUL byte: keep both out of the raw payloads
    raw = st.binary(min_size=1, max_size=80).map(lambda b: b.replace(b"\n", b" ").replace(b"\x00", b" "))
    return as_json | raw


@settings(max_examples=3, phases=[Phase.generate], deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batch=st.lists(_malformed_payloads(), min_size=80, max_size=80))
def test_malformed_payloads_are_rejected_while_serving(box, batch):
    """Hypothesis batches through the live broker (3 × 80): each payload answered `rejected`; the daemon keeps serving."""
    before = len([e for t, e in box.stream.events if t == box.topics.ack and e["state"] == "rejected"])
    box.publish_lines("speak", batch)
    good = speak_doc("Still serving.")
    box.publish("speak", good)
    box.stream.wait_ack(good["id"], "queued", timeout=30)  # after every malformed one: same topic, same order
    rejected = [e for t, e in box.stream.events if t == box.topics.ack and e["state"] == "rejected"][before:]
    assert len(rejected) == len(batch) and all(e.get("reason") for e in rejected)


def test_forged_and_replayed_alerts_are_rejected(box):
    forged = signed(alert_doc("Abandon ship."), "alert", box.stranger)
    tampered = signed(alert_doc("Muster at station A."), "alert", box.key)
    tampered["text"] = "Abandon ship."
    unsigned = alert_doc("Abandon ship.")
    stale = signed(alert_doc("Muster at station A.", now=time.time() - 3600, ttl=7200), "alert", box.key)
    for document in (forged, tampered, unsigned, stale):
        box.publish("alert", document)
        event = box.stream.wait_ack(document["id"], "rejected")
        assert "signature" in event["reason"] or "replay" in event["reason"]
    assert "replay" in box.stream.wait_ack(stale["id"], "rejected")["reason"]

    genuine = signed(alert_doc("Muster at station A.", repeat=1), "alert", box.key)
    box.publish("alert", genuine)
    box.stream.wait_ack(genuine["id"], "done", timeout=30)
    box.publish("alert", genuine)  # replayed verbatim
    box.stream.wait_ack(genuine["id"], "duplicate")
    assert box.stream.acks(genuine["id"]).count("done") == 1


def test_expired_commands_are_reported_not_played(box):
    stale = speak_doc("Too late.", now=time.time() - 120, ttl=60)
    box.publish("speak", stale)
    box.stream.wait_ack(stale["id"], "expired")

    # ~6 s of speech ahead of it; a 3 s TTL leaves room for delivery on a loaded machine and still runs out in the queue
    long = speak_doc("A long announcement for the expiry test, read slowly to the whole ship. " * 2)
    box.publish("speak", long)
    box.stream.wait_ack(long["id"], "playing")
    short_lived = speak_doc("Expires in the queue.", ttl=3.0)
    box.publish("speak", short_lived)
    box.stream.wait_ack(short_lived["id"], "queued")
    box.stream.wait_ack(short_lived["id"], "expired", timeout=40)
    assert "playing" not in box.stream.acks(short_lived["id"])


def test_alert_preempts_speak_which_is_requeued(box):
    speak = speak_doc(LONG_TEXT)
    box.publish("speak", speak)
    box.stream.wait_ack(speak["id"], "playing")
    alert = signed(alert_doc("Man overboard, starboard side.", priority=230), "alert", box.key)
    box.publish("alert", alert)
    queued = box.stream.wait_ack(alert["id"], "queued")
    preempted = box.stream.wait_ack(speak["id"], "preempted")
    assert "re-queued" in preempted["reason"]
    assert _seconds(preempted["at"]) - _seconds(queued["at"]) < 1.0  # 200 ms is measured in-process (test_service)
    box.stream.wait_ack(alert["id"], "done", timeout=30)
    cancel = signed({"id": "cancel-requeued", "issued_at": speak["issued_at"], "cancels": speak["id"]}, "cancel", box.key)
    box.stream.wait_ack(speak["id"], "playing", timeout=30)
    box.publish("cancel", cancel)
    box.stream.wait_ack(cancel["id"], "done")
    box.stream.wait_ack(speak["id"], "cancelled")
    assert box.stream.acks(speak["id"]) == ["queued", "playing", "preempted", "playing", "cancelled"]


def test_cancel_of_a_queued_command_and_of_an_unknown_id(box):
    first, second = speak_doc(LONG_TEXT), speak_doc("Never played.")
    box.publish("speak", first)
    box.publish("speak", second)
    box.stream.wait_ack(second["id"], "queued")
    now = speak_doc()["issued_at"]
    box.publish("cancel", signed({"id": "c-1", "issued_at": now, "cancels": second["id"]}, "cancel", box.key))
    box.stream.wait_ack(second["id"], "cancelled")
    box.stream.wait_ack("c-1", "done")
    box.publish("cancel", signed({"id": "c-2", "issued_at": now, "cancels": "no-such-id"}, "cancel", box.key))
    assert "no queued" in box.stream.wait_ack("c-2", "failed")["reason"]
    box.publish("cancel", {"id": "c-3", "issued_at": now, "cancels": first["id"]})
    box.stream.wait_ack("c-3", "rejected")
    box.publish("cancel", signed({"id": "c-4", "issued_at": now, "cancels": first["id"]}, "cancel", box.key))
    box.stream.wait_ack(first["id"], "cancelled")


def test_local_trigger_topic_fires_a_standard_alert(box):
    import subprocess

    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(box.broker.port), "-q", "1",
                    "-t", box.topics.local_trigger, "-m", "evacuate"], check=True, timeout=15)
    queued = box.stream.wait_for(lambda t, e: t == box.topics.ack and e.get("state") == "queued"
                                 and str(e.get("id")).startswith("local-evacuate-"))
    box.stream.wait_ack(queued["id"], "done", timeout=30)


def _seconds(stamp: str) -> float:
    from runtime.daemon.envelope import parse_time

    return parse_time(stamp, "at")


def test_sigterm_stops_cleanly_and_says_offline(box):
    mark = box.stream.mark()
    box.stop()
    assert box.process.returncode == 0, box.log()
    assert box.stream.wait_status("offline", start=mark)["reason"] == "stopped"


def test_zones_and_volume_reach_the_amplifier(make_box):
    """The daemon drives the device layer's simulated Modbus amplifier on a pty, like a real one on RS485."""
    from device.profiles import load_profile
    from device.sim import PtyPair, open_sim

    profile = Path(__file__).resolve().parents[2] / "configs" / "amplifiers" / "generic-modbus-rtu.toml"
    pair = PtyPair()
    sim = open_sim(load_profile(profile), pair.amp_path).start()
    try:
        box = make_box(amplifier={"kind": "profile", "profile": str(profile), "port": pair.host_path})
        box.start()
        box.wait_online()
        doc = speak_doc("Zones two and three.", zones=[2, 3], volume=40)
        box.publish("speak", doc)
        box.stream.wait_ack(doc["id"], "done", timeout=30)
        box.stop()
        writes = []
        while not sim.writes.empty():
            write = sim.writes.get_nowait()
            writes.append((write.function, write.value))
        assert ("volume", 40) in writes and ("power", 1) in writes
        assert any(function == "zones" for function, _ in writes)
    finally:
        sim.stop()
        pair.close()
