"""`skyvoice amp`: Field checks of the PA amplifier."""

from __future__ import annotations

import argparse

from runtime.errors import SkyvoiceError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("amp", help="Field checks of the PA amplifier")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise SkyvoiceError("'skyvoice amp' is not implemented yet")
