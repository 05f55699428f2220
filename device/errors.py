"""Errors of the device layer (its own root: device/ does not import runtime/)."""


class DeviceError(Exception):
    """Root of device-layer errors."""


class AmplifierFault(DeviceError):
    """The amplifier did not answer, answered with an exception, or read back a different value."""


class AudioSinkError(DeviceError):
    """The audio output could not be opened or written."""
