"""`skyvoice keys`: Manage Ed25519 signing keys."""

from __future__ import annotations

import argparse

from runtime.errors import SkyvoiceError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("keys", help="Manage Ed25519 signing keys")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise SkyvoiceError("'skyvoice keys' is not implemented yet")
