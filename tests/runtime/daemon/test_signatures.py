"""Alerts need Ed25519 signatures from trusted keys, fresh issued_at, and two distinct keys for Actual when configured."""

from __future__ import annotations

import json
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from daemon_docs import alert_doc, signed, speak_doc
from runtime.daemon.envelope import parse_document
from runtime.daemon.signatures import SignaturePolicy
from runtime.errors import CommandRejected
from runtime.keys import TrustStore, key_id_of


@pytest.fixture(scope="module")
def keys():
    return [Ed25519PrivateKey.generate() for _ in range(3)]


def policy(trusted, **options) -> SignaturePolicy:
    return SignaturePolicy(TrustStore({key_id_of(k.public_key()): k.public_key() for k in trusted}), **options)


def check(policy_, doc, kind="alert"):
    doc = json.loads(json.dumps(doc))  # as received
    return policy_.check(parse_document(doc, kind), doc)


def test_signed_alert_is_accepted(keys):
    assert check(policy(keys[:1]), signed(alert_doc(), "alert", keys[0])) == (key_id_of(keys[0].public_key()),)


def test_unsigned_alert_is_rejected(keys):
    with pytest.raises(CommandRejected, match="bad signature"):
        check(policy(keys[:1]), alert_doc())


def test_untrusted_key_is_rejected(keys):
    with pytest.raises(CommandRejected, match="not among"):
        check(policy(keys[:1]), signed(alert_doc(), "alert", keys[2]))


def test_tampered_text_is_rejected(keys):
    doc = signed(alert_doc(), "alert", keys[0])
    doc["text"] = "Everything is fine, stay inside."
    with pytest.raises(CommandRejected, match="does not match"):
        check(policy(keys[:1]), doc)


def test_signature_is_bound_to_the_command_kind(keys):
    doc = alert_doc()
    doc = signed(doc, "speak", keys[0])  # signed as a speak, sent as an alert
    with pytest.raises(CommandRejected, match="does not match"):
        check(policy(keys[:1]), doc)


def test_stale_alert_is_a_replay(keys):
    doc = signed(alert_doc(now=time.time() - 3600, ttl=7200), "alert", keys[0])
    with pytest.raises(CommandRejected, match="replay"):
        check(policy(keys[:1], replay_window_s=300), doc)


def test_actual_alert_needs_two_distinct_keys(keys):
    strict = policy(keys[:2], actual_requires_two=True)
    with pytest.raises(CommandRejected, match="2 signatures"):
        check(strict, signed(alert_doc(status="Actual"), "alert", keys[0]))
    with pytest.raises(CommandRejected, match="signed twice"):
        check(strict, signed(alert_doc(status="Actual"), "alert", keys[0], keys[0]))
    assert len(check(strict, signed(alert_doc(status="Actual"), "alert", keys[0], keys[1]))) == 2
    assert len(check(strict, signed(alert_doc(status="Test"), "alert", keys[0]))) == 1


def test_speak_needs_no_signature_unless_configured(keys):
    assert check(policy(keys[:1]), speak_doc(), "speak") == ()
    with pytest.raises(CommandRejected):
        check(policy(keys[:1], require_signed_speak=True), speak_doc(), "speak")
