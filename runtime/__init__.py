"""skyvoice runtime: everything that runs on the box. Never imports torch."""

__version__ = "0.1.0"
