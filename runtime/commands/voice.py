"""`skyvoice voice`: Manage voice packs in a bundle (add needs the build extra)."""

from __future__ import annotations

import argparse

from runtime.errors import SkyvoiceError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("voice", help="Manage voice packs in a bundle (add needs the build extra)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise SkyvoiceError("'skyvoice voice' is not implemented yet")
