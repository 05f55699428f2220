"""envelope.parse: valid commands become frozen dataclasses; anything else is CommandRejected, never another error."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon_docs import alert_doc, payload, speak_doc
from runtime.daemon.envelope import AlertCommand, SpeakCommand, best_effort_id, parse
from runtime.daemon.topics import COMMAND_KINDS
from runtime.errors import CommandRejected

CAP = """<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>KSTO1055887203</identifier><sender>ops@example.org</sender><sent>2026-12-02T04:00:00-00:00</sent>
  <status>Exercise</status><msgType>Alert</msgType><scope>Public</scope>
  <info><category>Fire</category><event>Fire</event><urgency>Immediate</urgency><severity>Severe</severity>
    <certainty>Observed</certainty><headline>Fire on deck three</headline>
    <instruction>Go to muster station B</instruction></info>
</alert>"""


def test_speak_is_parsed_with_defaults():
    command = parse(payload(speak_doc("Dinner is served", lang="en", zones=[2, 1])), "speak")
    assert isinstance(command, SpeakCommand)
    assert command.text == "Dinner is served" and command.lang == "en"
    assert command.envelope.zones == (1, 2) and command.envelope.priority == 100 and command.envelope.repeat == 1


def test_speak_without_expiry_gets_the_default_ttl():
    doc = speak_doc()
    del doc["expires_at"]
    command = parse(payload(doc), "speak", speak_default_ttl_s=60)
    assert command.envelope.expires_at == pytest.approx(command.envelope.issued_at + 60)


def test_cap_alert_text_and_status_come_from_the_document():
    doc = alert_doc()
    del doc["text"], doc["status"]
    doc["cap"] = CAP
    command = parse(payload(doc), "alert")
    assert isinstance(command, AlertCommand)
    assert command.status == "Exercise" and command.cap_identifier == "KSTO1055887203"
    assert command.text == "Fire on deck three. Go to muster station B."


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"priority": 150}, "priority"),
        ({"status": "Draft"}, "status"),
        ({"surprise": 1}, "unknown field"),
        ({"zones": [0]}, "zones"),
        ({"zones": [1, 1]}, "zones"),
        ({"volume": True}, "volume"),
        ({"repeat": 11}, "repeat"),
        ({"reply_to": "a/#"}, "reply_to"),
        ({"issued_at": "2026-12-02 04:00:00"}, "issued_at"),
        ({"expires_at": "2000-01-01T00:00:00Z"}, "expires_at"),
        ({"cap": CAP}, "exactly one"),
        ({"signatures": [{"key_id": "a"}]}, "signatures"),
    ],
)
def test_bad_alert_fields_are_named(change, reason):
    doc = alert_doc()
    doc.update(change)
    with pytest.raises(CommandRejected, match=reason):
        parse(payload(doc), "alert")


def test_alert_needs_an_expiry():
    doc = alert_doc()
    del doc["expires_at"]
    with pytest.raises(CommandRejected, match="expires_at"):
        parse(payload(doc), "alert")


def test_cap_with_entities_is_refused():
    doc = alert_doc()
    del doc["text"]
    doc["cap"] = '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "boom">]><alert>&x;</alert>'
    with pytest.raises(CommandRejected, match="DOCTYPE"):
        parse(payload(doc), "alert")


def test_rejected_payload_still_yields_its_id_for_the_ack():
    assert best_effort_id(b'{"id": "abc-1", "text": 5}') == "abc-1"
    assert best_effort_id(b"\xff\xfe") is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)
FIELD_NAMES = ["id", "issued_at", "expires_at", "priority", "zones", "volume", "repeat", "reply_to", "signatures",
               "text", "voice", "lang", "cap", "status", "chime", "cancels", "pack"]


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()), st.sampled_from(COMMAND_KINDS))
def test_arbitrary_payloads_are_parsed_or_rejected(raw, kind):
    try:
        parse(raw, kind)
    except CommandRejected:
        pass


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["speak", "alert"]),
    st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=4),
    st.lists(st.sampled_from(FIELD_NAMES), max_size=3),
)
def test_mutated_valid_commands_are_parsed_or_rejected(kind, changes, removals):
    doc = speak_doc() if kind == "speak" else alert_doc()
    doc.update(changes)
    for name in removals:
        doc.pop(name, None)
    try:
        command = parse(json.dumps(doc).encode(), kind)
    except CommandRejected:
        return
    assert command.kind == kind and command.envelope.id == doc["id"]
