"""Profiles: every shipped profile loads; mistakes are errors that name the key or value."""

from __future__ import annotations

import pytest

from device.errors import ProfileError
from device.profiles import load_profile, mask_to_zones, profile_from_dict, raw_to_volume, volume_to_raw, zones_to_mask
from tests.device.conftest import PROFILES

MINIMAL_MODBUS = {
    "name": "t",
    "protocol": "modbus_rtu",
    "modbus": {"device_id": 3, "volume": {"table": "holding", "address": 7}},
}


@pytest.mark.parametrize("path", sorted(PROFILES.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_profiles_load(path):
    profile = load_profile(path)
    assert profile.name == path.stem
    assert (profile.modbus is not None) == (profile.protocol == "modbus_rtu")
    assert (profile.ascii is not None) == (profile.protocol == "ascii_line")


def test_minimal_modbus_profile_takes_defaults():
    profile = profile_from_dict(MINIMAL_MODBUS, "mini.toml")
    assert profile.modbus.device_id == 3 and profile.modbus.volume.address == 7
    assert profile.modbus.power is None and profile.serial.baudrate == 19200 and not profile.serial.rs485_mode


def test_unknown_key_is_an_error_naming_it():
    data = {**MINIMAL_MODBUS, "modbus": {**MINIMAL_MODBUS["modbus"], "volum": {"table": "holding", "address": 1}}}
    with pytest.raises(ProfileError, match=r"x\.toml: unknown key 'modbus\.volum'"):
        profile_from_dict(data, "x.toml")
    with pytest.raises(ProfileError, match="unknown key 'timing.timeout_ms'"):
        profile_from_dict({**MINIMAL_MODBUS, "timing": {"timeout_ms": 5}}, "x.toml")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"protocol": "canbus"}, "'protocol' = 'canbus' is not one of"),
        ({"modbus": {"device_id": 0, "volume": {"address": 1}}}, "device_id' = 0 must be 1..247"),
        ({"modbus": {"device_id": 1, "volume": {"address": 70000}}}, "not a 0-based PDU address"),
        ({"modbus": {"device_id": 1}}, r"required table \[modbus.volume\] is missing"),
        ({"modbus": {"device_id": 1, "volume": {"address": 1}, "power": {"table": "input", "address": 0}}},
         "'modbus.power.table' = 'input' is not one of coil, holding"),
        ({"serial": {"baudrate": "fast"}}, "'serial.baudrate' = 'fast' must be a int"),
    ],
)
def test_bad_values_are_named(change, message):
    with pytest.raises(ProfileError, match=message):
        profile_from_dict({**MINIMAL_MODBUS, **change}, "x.toml")


def test_ascii_templates_and_patterns_are_checked():
    base = {"name": "a", "protocol": "ascii_line", "ascii": {"volume": {"set": "VOL {raw}"}}}
    assert profile_from_dict(base).ascii.volume.set == "VOL {raw}"
    with pytest.raises(ProfileError, match=r"must use exactly the field\(s\) \{raw\}"):
        profile_from_dict({**base, "ascii": {"volume": {"set": "VOL {level}"}}})
    with pytest.raises(ProfileError, match=r"needs a named group \(\?P<value>"):
        profile_from_dict({**base, "ascii": {"volume": {"set": "VOL {raw}", "query": "VOL?", "reply": "^VOL (\\d+)$"}}})
    with pytest.raises(ProfileError, match="needs both 'query' and 'reply'"):
        profile_from_dict({**base, "ascii": {"volume": {"set": "VOL {raw}", "query": "VOL?"}}})
    with pytest.raises(ProfileError, match="'ascii.ack' is not a valid regex"):
        profile_from_dict({**base, "ascii": {**base["ascii"], "ack": "(OK"}})


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(ProfileError, match="does not exist"):
        load_profile(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(ProfileError, match="is not valid TOML"):
        load_profile(bad)


def test_scales_and_zone_masks():
    assert volume_to_raw(0, 121, 201) == 121 and volume_to_raw(100, 121, 201) == 201 and volume_to_raw(150, 0, 10) == 10
    assert raw_to_volume(volume_to_raw(55, 0, 100), 0, 100) == 55
    assert zones_to_mask((1, 3), 8, "p") == 0b101 and mask_to_zones(0b101, 8) == (1, 3)
    with pytest.raises(ProfileError, match="zone 9 does not exist on this amplifier"):
        zones_to_mask((9,), 8, "p")
