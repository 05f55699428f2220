"""Errors of the device layer (its own root: device/ does not import runtime/)."""


class DeviceError(Exception):
    """Root of device-layer errors."""


class AmplifierFault(DeviceError):
    """The amplifier did not answer, answered with an exception, or read back a different value."""


class AmplifierUnreachable(AmplifierFault):
    """No answer at all within the response timeout and retries (dead bus, wrong port, baud or device id)."""


class ReadBackMismatch(AmplifierFault):
    """A write was answered but reading the value back gave something else."""


class ProfileError(DeviceError):
    """An amplifier profile (TOML) is missing, malformed, or names an unknown key or value."""


class SimError(DeviceError):
    """A simulated amplifier could not start, or cannot model what its profile asks."""


class AudioSinkError(DeviceError):
    """The audio output could not be opened or written."""
