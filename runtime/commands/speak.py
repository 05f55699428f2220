"""`skyvoice speak`: text (or GPT-SoVITS v2 phone symbols) → a 32 kHz mono WAV, on the box, without torch."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from runtime.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "speak",
        help="Synthesize text or phones to a WAV file",
        description="Synthesize with a bundle's neural voice (or, with no --bundle, the fallback voice) into a WAV file.",
    )
    parser.add_argument("text", nargs="?", help="the text to speak (omit when using --phones)")
    parser.add_argument("--bundle", type=Path, help="bundle directory; omit to use the fallback voice (espeak-ng)")
    parser.add_argument("--voice", help="voice pack name in the bundle (default: the first one)")
    parser.add_argument("--lang", default="auto", help="zh, en, ja, ko, yue or auto (default auto)")
    parser.add_argument("--phones", help='space-separated GPT-SoVITS v2 symbols, e.g. "h ai1 , w o3 ."')
    parser.add_argument("--out", type=Path, required=True, help="output WAV path")
    parser.add_argument("--top-k", type=int, default=None, help="default: the checkpoint's inference.top_k (15)")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--repetition-penalty", type=float, default=1.35)
    parser.add_argument("--seed", type=int, default=-1, help="-1: random")
    parser.add_argument("--noise-scale", type=float, default=0.5)
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--max-tokens", type=int, default=1500, help="at most 1500 tokens (60 s) per sentence")
    parser.add_argument("--no-stream", action="store_true", help="decode each sentence whole instead of in token chunks")
    parser.add_argument("--tokens-out", type=Path, help="write the generated semantic tokens (per sentence) as JSON")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: all cores)")
    parser.set_defaults(func=run)


def _options(args: argparse.Namespace, default_top_k: int):
    from runtime.synth.synthesizer import SynthesisOptions

    if not 1 <= args.max_tokens <= 1500:
        raise ConfigError(f"--max-tokens {args.max_tokens} must be between 1 and 1500")
    if not 0 < args.top_p <= 1:
        raise ConfigError(f"--top-p {args.top_p} must be in (0, 1]")
    if args.top_k is not None and args.top_k < 1:
        raise ConfigError(f"--top-k {args.top_k} must be at least 1")
    if args.speed <= 0:
        raise ConfigError(f"--speed {args.speed} must be positive")
    return SynthesisOptions(
        top_k=args.top_k if args.top_k is not None else default_top_k,
        top_p=args.top_p,
        temperature=args.temperature,
        repetition_penalty=args.repetition_penalty,
        noise_scale=args.noise_scale,
        speed=args.speed,
        seed=args.seed,
        max_tokens=args.max_tokens,
        stream=not args.no_stream,
    )


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import soundfile

    if (args.text is None) == (args.phones is None):
        raise ConfigError("give exactly one of TEXT or --phones")
    started = time.monotonic()
    chunks = []
    utterances: list = []
    if args.bundle is None:
        if args.phones is not None:
            raise ConfigError("--phones needs --bundle: the fallback voice speaks text only")
        from runtime.daemon.fallback import EspeakSynthesizer

        synth = EspeakSynthesizer()
        print("no --bundle given: speaking with the fallback voice (espeak-ng)", file=sys.stderr)
        stream = synth.synthesize(args.text, lang=args.lang)
    else:
        from runtime.synth.voice_engine import load_synthesizer

        synth = load_synthesizer(args.bundle, threads=args.threads)
        options = _options(args, synth.default_top_k)
        if args.phones is not None:
            from runtime.text.symbols import parse_phones

            stream = synth.synthesize_phones(parse_phones(args.phones), voice=args.voice, options=options, utterances=utterances)
        else:
            stream = synth.synthesize(args.text, voice=args.voice, lang=args.lang, options=options, utterances=utterances)
    first_audio_s = None
    for chunk in stream:
        if first_audio_s is None and chunk.samples.size:
            first_audio_s = time.monotonic() - started
        chunks.append(chunk.samples)
    audio = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > 1.0:  # the official post-processing: normalise only when clipping
        audio = audio / peak
    args.out.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(args.out, audio, synth.sample_rate_hz, subtype="PCM_16")
    if args.tokens_out is not None:
        args.tokens_out.write_text(json.dumps(
            {"sentences": [{"text": u.text, "phone_ids": u.phone_ids, "tokens": u.tokens} for u in utterances]}, indent=1
        ))
    seconds = audio.size / synth.sample_rate_hz
    elapsed = time.monotonic() - started
    print(
        f"{args.out}: {seconds:.2f} s of audio at {synth.sample_rate_hz} Hz in {elapsed:.2f} s "
        f"(first audio after {first_audio_s or 0:.2f} s)",
        file=sys.stderr,
    )
    return 0
