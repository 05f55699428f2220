"""`skyvoice keys`: Manage Ed25519 signing keys."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_KEY_DIR = "keys"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("keys", help="Manage Ed25519 signing keys")
    actions = parser.add_subparsers(dest="keys_action", metavar="ACTION", required=True)
    new = actions.add_parser("new", help="create NAME.key (private, 0600) and NAME.pub (give the .pub to the boxes)")
    new.add_argument("--name", required=True, help="key name, e.g. release-2026")
    new.add_argument("--dir", type=Path, default=Path(DEFAULT_KEY_DIR), help=f"output directory (default ./{DEFAULT_KEY_DIR})")
    new.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from runtime.keys import generate_keypair, key_id_of, load_public_key

    private_path, public_path = generate_keypair(args.dir, args.name)
    key_id = key_id_of(load_public_key(public_path))
    print(f"private key: {private_path} (keep it secret, off the boxes)")
    print(f"public key:  {public_path} (copy into each box's trusted key directory)")
    print(f"key id:      {key_id}")
    return 0
