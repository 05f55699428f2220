"""Error tree for the runtime. Each message is one sentence naming the file, field or value, and the fix."""


class SkyvoiceError(Exception):
    """Root of every error a user may see from skyvoice."""


class ConfigError(SkyvoiceError):
    """A config file or CLI option is invalid."""


class FrontendError(SkyvoiceError):
    """Text could not be turned into phones (empty, unknown language, too long...)."""


class SynthesisError(SkyvoiceError):
    """The neural voice failed to produce audio."""


class BundleRejected(SkyvoiceError):
    """A bundle or voice pack failed verification (signature, hash, target, format)."""


class CommandRejected(SkyvoiceError):
    """An MQTT command was malformed, unsigned, expired or otherwise refused."""
