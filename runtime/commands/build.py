"""`skyvoice build`: GPT-SoVITS v2 checkpoints → a bundle of validated ONNX graphs (workstation, needs the build extra)."""

from __future__ import annotations

import argparse
from pathlib import Path

from runtime.bundle.build_choices import DECODER_CPU_FORMS, GPT_CPU_FORMS, PRECISIONS, TARGETS
from runtime.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "build",
        help="Build a bundle from GPT-SoVITS v2 checkpoints (workstation, needs the build extra)",
        description="Load the GPT .ckpt and SoVITS .pth written by the official WebUI, export the GPT prefill, the "
        "GPT decode step, the SoVITS decoder, the reference encoder and the prompt encoder to ONNX, check each against "
        "the PyTorch reference, optionally quantize, and write BUNDLE/manifest.json.",
    )
    parser.add_argument("--gpt", type=Path, required=True, help="GPT (s1) checkpoint, e.g. GPT_weights_v2/name-e15.ckpt")
    parser.add_argument("--sovits", type=Path, required=True, help="SoVITS (s2) weights, e.g. SoVITS_weights_v2/name_e8_s200.pth")
    parser.add_argument("--out", type=Path, required=True, help="bundle directory to create")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help="graph precision; auto picks INT8 per graph only where the fidelity gate passes")
    parser.add_argument("--target", default="jetson", choices=TARGETS,
                        help="jetson: every graph loadable by TensorRT; cpu: ONNX Runtime's CPU INT8 forms too, kept where "
                        "measured faster inside the fidelity gate")
    parser.add_argument("--gpt-cpu-form", default="auto", choices=("auto", *GPT_CPU_FORMS),
                        help="INT8 form of the GPT graphs on a cpu bundle: auto times them on this machine; name one for a "
                        "box whose CPU differs (measured: int8_block on x86 with VNNI, int8_dynamic on AVX2-only x86, "
                        "int8_column where integer GEMMs are fast, e.g. Xeon with AMX)")
    parser.add_argument("--decoder-cpu-form", default="auto", choices=("auto", *DECODER_CPU_FORMS),
                        help="INT8 form of the SoVITS decoder on a cpu bundle: auto times them on this machine inside the "
                        "fidelity gate; name one for a box whose CPU differs (int8_cpu_residual: residual adds in uint8 too)")
    parser.add_argument("--bert", type=Path, default=None,
                        help="local chinese-roberta-wwm-ext-large directory: ship Chinese BERT features (else zeros)")
    parser.add_argument("--g2pw", type=Path, default=None,
                        help="local G2PWModel directory (with vocab.txt): Mandarin polyphones by g2pW (else pypinyin)")
    parser.add_argument("--calib", type=Path, default=None, help="calibration texts (default: configs/calibration/)")
    parser.add_argument("--kv-capacity", type=int, default=2048, help="GPT KV cache rows (phones + prompt + tokens)")
    parser.add_argument("--bundle-version", default=None, help="version string such as 2026.12.2 (default: from the date)")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        from export.build import BuildConfig, Progress, build_bundle
    except ImportError as exc:
        raise ConfigError(f"'skyvoice build' needs the build extra ({exc.name} is missing): run scripts/setup build") from None
    config = BuildConfig(
        gpt_path=args.gpt, sovits_path=args.sovits, out_dir=args.out, precision=args.precision, target=args.target, gpt_cpu_form=args.gpt_cpu_form,
        decoder_cpu_form=args.decoder_cpu_form, bert_dir=args.bert, g2pw_dir=args.g2pw,
        calibration_path=args.calib, kv_capacity=args.kv_capacity, bundle_version=args.bundle_version, force=args.force,
    )
    out = build_bundle(config, Progress(enabled=not args.quiet))
    print(out)
    return 0
