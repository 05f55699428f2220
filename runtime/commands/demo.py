"""`skyvoice demo`: The whole loop on one machine: broker, daemon, simulated amplifier, WAV sink."""

from __future__ import annotations

import argparse

from runtime.errors import SkyvoiceError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="The whole loop on one machine: broker, daemon, simulated amplifier, WAV sink")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise SkyvoiceError("'skyvoice demo' is not implemented yet")
