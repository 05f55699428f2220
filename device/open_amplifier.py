"""`open_amplifier(profile_path, port) -> Amplifier`: pick the adapter named by the profile's `protocol`."""

from __future__ import annotations

from pathlib import Path
from typing import Union

from device.amplifier import Amplifier
from device.errors import ProfileError
from device.profiles import PROTOCOL_ASCII_LINE, PROTOCOL_MODBUS_RTU, PROTOCOL_NULL, AmplifierProfile, load_profile


def open_amplifier(profile_path: Union[str, Path, AmplifierProfile], port: str = "") -> Amplifier:
    """Load the TOML profile (or take a loaded one) and build its adapter on serial `port`.

    The port is opened lazily, at the first command, so this never blocks; `protocol = "null"` needs no port.
    Raises `ProfileError` for a bad profile or a missing port.
    """
    profile = profile_path if isinstance(profile_path, AmplifierProfile) else load_profile(profile_path)
    if profile.protocol == PROTOCOL_NULL:
        from device.null_amplifier import NullAmplifier

        return NullAmplifier(warmup_s=profile.timing.warmup_s)
    if not port:
        raise ProfileError(f"{profile.source}: protocol '{profile.protocol}' needs a serial port, pass --port /dev/ttyX")
    if profile.protocol == PROTOCOL_MODBUS_RTU:
        from device.modbus_rtu import ModbusRtuAmplifier

        return ModbusRtuAmplifier(profile, port)
    if profile.protocol == PROTOCOL_ASCII_LINE:
        from device.ascii_line import AsciiLineAmplifier

        return AsciiLineAmplifier(profile, port)
    raise ProfileError(f"{profile.source}: unknown protocol '{profile.protocol}'")  # profiles refuse it earlier
