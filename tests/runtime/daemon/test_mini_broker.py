"""The embedded broker's topic matching (the demo exercises the rest end to end)."""

from __future__ import annotations

import pytest

from runtime.daemon.mini_broker import encode_length, topic_matches


@pytest.mark.parametrize(
    "topic_filter, topic, expected",
    [
        ("skyvoice/b/cmd/+", "skyvoice/b/cmd/speak", True),
        ("skyvoice/b/cmd/+", "skyvoice/b/cmd/speak/x", False),
        ("skyvoice/b/evt/#", "skyvoice/b/evt/ack", True),
        ("skyvoice/b/evt/#", "skyvoice/b/evt", True),
        ("#", "$SYS/broker/uptime", False),
        ("a/b", "a/c", False),
    ],
)
def test_topic_matches(topic_filter, topic, expected):
    assert topic_matches(topic_filter, topic) is expected


def test_remaining_length_encoding():
    assert encode_length(0) == b"\x00" and encode_length(127) == b"\x7f" and encode_length(128) == b"\x80\x01"
