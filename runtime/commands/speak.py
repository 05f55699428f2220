"""`skyvoice speak`: Synthesize text or phones to a WAV file."""

from __future__ import annotations

import argparse

from runtime.errors import SkyvoiceError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("speak", help="Synthesize text or phones to a WAV file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise SkyvoiceError("'skyvoice speak' is not implemented yet")
