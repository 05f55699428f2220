"""`skyvoice phonemize`: Print the GPT-SoVITS v2 symbols for a text."""

from __future__ import annotations

import argparse

from runtime.errors import SkyvoiceError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("phonemize", help="Print the GPT-SoVITS v2 symbols for a text")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise SkyvoiceError("'skyvoice phonemize' is not implemented yet")
