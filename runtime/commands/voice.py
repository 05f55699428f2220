"""`skyvoice voice add|list|install`: make voice packs (workstation) and install signed ones (box)."""

from __future__ import annotations

import argparse
from pathlib import Path

from runtime.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("voice", help="Manage voice packs in a bundle (add needs the build extra)")
    actions = parser.add_subparsers(dest="voice_command", metavar="ACTION", required=True)

    add = actions.add_parser(
        "add",
        help="make a voice pack from a 3-10 s reference recording (workstation: runs HuBERT)",
        description="Compute the prompt semantic tokens (HuBERT + the bundle's prompt encoder), the prompt phones and "
        "the speaker vector ge (the bundle's reference encoder), and store them as BUNDLE/voices/NAME.npz.",
    )
    add.add_argument("--bundle", type=Path, required=True)
    add.add_argument("--name", required=True, help="voice name: letters, digits, '_', '-', '.'")
    add.add_argument("--ref", type=Path, required=True, help="reference WAV/FLAC, 3-10 s, one speaker")
    add.add_argument("--ref-text", help="what the reference says (phonemized with --lang)")
    add.add_argument("--lang", default="auto", help="language of --ref-text: zh, en, ja, ko, yue, auto")
    add.add_argument("--ref-phones", help="the reference's GPT-SoVITS v2 symbols, space-separated (instead of --ref-text)")
    add.add_argument("--hubert", type=Path, required=True, help="local chinese-hubert-base directory (Hugging Face format)")
    add.add_argument("--key", type=Path, help="sign the pack with this private key (writes NAME.npz.sig)")
    add.add_argument("--force", action="store_true", help="replace an existing voice of that name")
    add.set_defaults(func=run_add)

    listing = actions.add_parser("list", help="list the voices of a bundle")
    listing.add_argument("--bundle", type=Path, required=True)
    listing.set_defaults(func=run_list)

    install = actions.add_parser("install", help="verify a signed voice pack and install it atomically (box)")
    install.add_argument("pack", type=Path, help="NAME.npz with NAME.npz.sig beside it")
    install.add_argument("--bundle", type=Path, required=True, help="the bundle (or release) to install into")
    install.add_argument("--trust", type=Path, required=True, help="directory of trusted *.pub keys")
    install.add_argument("--name", help="install under another name")
    install.set_defaults(func=run_install)


def run_add(args: argparse.Namespace) -> int:
    if (args.ref_text is None) == (args.ref_phones is None):
        raise ConfigError("give exactly one of --ref-text (with --lang) or --ref-phones")
    try:
        from export.voice_add import add_voice
    except ImportError as exc:
        raise ConfigError(f"'skyvoice voice add' needs the build extra ({exc.name} is missing): run scripts/setup build") from None
    path = add_voice(
        bundle_dir=args.bundle, name=args.name, ref_wav=args.ref, hubert_dir=args.hubert,
        ref_text=args.ref_text, lang=args.lang, ref_phones=args.ref_phones, force=args.force,
    )
    if args.key is not None:
        from runtime.bundle.signing import sign_file

        sign_file(path, args.key)
    print(path)
    return 0


def run_list(args: argparse.Namespace) -> int:
    from runtime.bundle.voices import list_voices

    for name in list_voices(args.bundle):
        print(name)
    return 0


def run_install(args: argparse.Namespace) -> int:
    from runtime.bundle.voices import install_voice
    from runtime.keys import TrustStore

    info = install_voice(args.pack, args.bundle, TrustStore.from_dir(args.trust), name=args.name)
    print(f"voice '{info.name}' installed ({info.path}), signed by key {info.key_id}")
    return 0
