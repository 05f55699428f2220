"""`skyvoice flash`: Install a bundle atomically, health-check it, roll back on failure."""

from __future__ import annotations

import argparse

from runtime.errors import SkyvoiceError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("flash", help="Install a bundle atomically, health-check it, roll back on failure")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise SkyvoiceError("'skyvoice flash' is not implemented yet")
