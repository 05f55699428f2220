"""Box config: the example loads; unknown keys and wrong types are errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.daemon.config import config_from_dict, load_config
from runtime.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[3] / "configs" / "box.example.toml"


def test_example_config_loads():
    config = load_config(EXAMPLE)
    assert config.box_id == "box-1" and config.security.actual_requires_two
    assert [a.name for a in config.standard_alerts] == ["evacuate", "all-clear"]


@pytest.mark.parametrize(
    "table, message",
    [
        ({"box_id": "b", "mqtt": {"hots": "x"}}, "mqtt.hots"),
        ({"box_id": "b", "mqtt": {"port": "1883"}}, "mqtt.port"),
        ({"box_id": "b/c"}, "box_id"),
        ({}, "box_id"),
        ({"box_id": "b", "audio": {"sink": "wav"}}, "wav_path"),
        ({"box_id": "b", "standard_alerts": [{"name": "x"}]}, "text"),
    ],
)
def test_bad_config_names_the_key(table, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(table)
