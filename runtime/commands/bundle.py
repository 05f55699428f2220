"""`skyvoice bundle`: Sign and verify bundles and voice packs."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bundle", help="Sign and verify bundles and voice packs")
    actions = parser.add_subparsers(dest="bundle_action", metavar="ACTION", required=True)
    sign = actions.add_parser("sign", help="sign BUNDLE's manifest.json (and its voice packs), or one voice pack .npz")
    sign.add_argument("bundle", type=Path, help="bundle directory, or a voice pack .npz")
    sign.add_argument("--key", type=Path, required=True, help="private key file (NAME.key from 'skyvoice keys new')")
    sign.add_argument("--no-voices", action="store_true", help="do not (re)sign voices/*.npz")
    sign.set_defaults(func=run_sign)
    verify = actions.add_parser("verify", help="check signature, every file's sha256 and size, and voice packs")
    verify.add_argument("bundle", type=Path, help="bundle directory, or a voice pack .npz")
    verify.add_argument("--trust", type=Path, required=True, help="directory of trusted .pub keys")
    verify.add_argument("--targets", action="store_true", help="also check the bundle's targets against this machine")
    verify.set_defaults(func=run_verify)


def run_sign(args: argparse.Namespace) -> int:
    from runtime.bundle.signing import sign_bundle, sign_file

    if args.bundle.is_file():
        print(f"signed {sign_file(args.bundle, args.key)}")
        return 0
    out = sign_bundle(args.bundle, args.key, sign_voices=not args.no_voices)
    print(f"signed {out}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from runtime.keys import TrustStore

    trust = TrustStore.from_dir(args.trust)
    if args.bundle.is_file():
        from runtime.bundle.signing import verify_file
        from runtime.bundle.voices import read_pack_meta

        key_id = verify_file(args.bundle, trust)
        meta = read_pack_meta(args.bundle.read_bytes(), what=str(args.bundle))
        print(f"OK voice pack {args.bundle} name={meta['name']} signed by key {key_id}")
        return 0
    from runtime.bundle.box_facts import probe_box_facts
    from runtime.bundle.verify import verify_bundle

    manifest = verify_bundle(args.bundle, trust, facts=probe_box_facts() if args.targets else None)
    targets = "onnx-only (any box)" if manifest.targets.onnx_only else str(manifest.targets)
    print(
        f"OK bundle {args.bundle} version={manifest.bundle_version} model={manifest.model_version} "
        f"files={len(manifest.files)} targets={targets}"
    )
    return 0


def run(args: argparse.Namespace) -> int:  # kept for the dispatcher's contract; actions set their own func
    return run_verify(args)
