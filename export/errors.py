"""Errors of the build stage."""

from runtime.errors import SkyvoiceError


class CheckpointError(SkyvoiceError):
    """A GPT .ckpt or SoVITS .pth file is unreadable, truncated or of the wrong layout."""


class ExportError(SkyvoiceError):
    """An ONNX export failed or its outputs disagree with the PyTorch reference."""
