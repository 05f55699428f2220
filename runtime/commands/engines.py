"""`skyvoice engines`: Build TensorRT engines from a bundle (on the Jetson)."""

from __future__ import annotations

import argparse

from runtime.errors import SkyvoiceError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("engines", help="Build TensorRT engines from a bundle (on the Jetson)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise SkyvoiceError("'skyvoice engines' is not implemented yet")
