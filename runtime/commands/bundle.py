"""`skyvoice bundle`: Sign and verify bundles and voice packs."""

from __future__ import annotations

import argparse

from runtime.errors import SkyvoiceError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bundle", help="Sign and verify bundles and voice packs")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise SkyvoiceError("'skyvoice bundle' is not implemented yet")
