"""`skyvoice build`: Build a bundle from GPT-SoVITS v2 checkpoints (workstation, needs the build extra)."""

from __future__ import annotations

import argparse

from runtime.errors import SkyvoiceError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("build", help="Build a bundle from GPT-SoVITS v2 checkpoints (workstation, needs the build extra)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise SkyvoiceError("'skyvoice build' is not implemented yet")
