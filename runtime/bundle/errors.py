"""Errors of the bundle package (all under BundleRejected, so the CLI reports them as user errors)."""

from runtime.errors import BundleRejected


class HealthCheckFailed(BundleRejected):
    """A freshly switched release did not load or did not speak; the installer rolls back."""


class FlashInProgress(BundleRejected):
    """Another `skyvoice flash` holds the box's flash lock."""
