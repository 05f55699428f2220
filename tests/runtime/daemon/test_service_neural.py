"""The daemon with a real (tiny, random-weight) bundle: the neural voice speaks, unknown voices are rejected,
standard alerts are pre-rendered at start."""

from __future__ import annotations

import pytest

from daemon_docs import payload, speak_doc
from runtime.daemon.config import config_from_dict
from runtime.daemon.service import Service
from test_service import TOPICS, RecordingPublisher  # noqa: I001

pytestmark = pytest.mark.slow


@pytest.fixture
def neural_service(tiny_bundle, tmp_path):
    config = config_from_dict(
        {
            "box_id": TOPICS.box_id,
            "store": {"path": str(tmp_path / "c.db")},
            "audio": {"sink": "wav", "wav_path": str(tmp_path / "out.wav"), "realtime": False},
            "voice": {"bundle_dir": str(tiny_bundle), "default_voice": "test", "max_tokens": 200},
            "telemetry": {"interval_s": 3600.0},
            "standard_alerts": [{"name": "evacuate", "text": "今天风很大。", "lang": "zh", "repeat": 1}],
        }
    )
    publisher = RecordingPublisher()
    service = Service(config, publisher=publisher)
    service.publisher = publisher
    service.start()
    yield service
    service.stop()


def test_neural_voice_speaks_and_unknown_voice_is_rejected(neural_service, caplog):
    assert neural_service.neural is not None
    assert neural_service.prerendered.lookup("今天风很大。", "zh") is not None
    good = speak_doc("今天风很大。", voice="test", lang="zh")
    neural_service.handle_message(TOPICS.command("speak"), payload(good))
    done = neural_service.publisher.wait_ack(good["id"], "done", timeout=120)
    assert done["first_audio_at"]
    assert "fallback voice speaks" not in caplog.text
    bad = speak_doc("Hello.", voice="nobody")
    neural_service.handle_message(TOPICS.command("speak"), payload(bad))
    assert "unknown voice" in neural_service.publisher.wait_ack(bad["id"], "rejected")["reason"]
