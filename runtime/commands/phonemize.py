"""`skyvoice phonemize`: Print the GPT-SoVITS v2 symbols for a text."""

from __future__ import annotations

import argparse
import sys

LANGUAGE_CHOICES = ("zh", "en", "ja", "ko", "yue", "auto")
SPLIT_CHOICES = ("cut0", "cut1", "cut2", "cut3", "cut4", "cut5")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "phonemize",
        help="Print the GPT-SoVITS v2 symbols for a text",
        description="Turn TEXT into v2 symbols (one line per piece with --split). Reads stdin when TEXT is '-'.",
    )
    parser.add_argument("text", metavar="TEXT", help="text to phonemize, or '-' to read it from stdin")
    parser.add_argument("--lang", default="auto", choices=LANGUAGE_CHOICES, help="language (default: auto)")
    parser.add_argument("--ids", action="store_true", help="print symbol ids instead of symbols")
    parser.add_argument(
        "--split",
        nargs="?",
        const="cut5",
        choices=SPLIT_CHOICES,
        help="split into pieces first, as speak does (default method cut5); prints one line per piece",
    )
    parser.add_argument("--norm", action="store_true", help="also print the normalised text and segments")
    parser.add_argument("--max-chars", type=int, default=1000, help="refuse longer text (default: 1000)")
    parser.add_argument(
        "--g2pw",
        metavar="DIR",
        help="local G2PWModel directory (g2pW.onnx, tables, vocab.txt) for Mandarin polyphones (default: pypinyin)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from runtime.text.frontend import TextFrontend

    text = sys.stdin.read() if args.text == "-" else args.text
    frontend = TextFrontend(max_chars=args.max_chars, g2pw_dir=args.g2pw)
    pieces = frontend.split_sentences(text, method=args.split, lang=args.lang) if args.split else [text]
    for piece in pieces:
        phonemes = frontend.phonemize(piece, args.lang)
        if args.norm:
            segments = " ".join(f"{lang}:{chunk!r}" for lang, chunk in phonemes.segments)
            print(f"# {phonemes.norm_text}  [{segments}]")
        print(" ".join(str(i) for i in phonemes.ids) if args.ids else " ".join(phonemes.symbols))
    return 0
