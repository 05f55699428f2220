"""`skyvoice sim-amp`: Run a simulated amplifier on a serial port or pty."""

from __future__ import annotations

import argparse

from runtime.errors import SkyvoiceError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("sim-amp", help="Run a simulated amplifier on a serial port or pty")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise SkyvoiceError("'skyvoice sim-amp' is not implemented yet")
