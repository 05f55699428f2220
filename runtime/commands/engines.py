"""`skyvoice engines`: Build TensorRT engines from a bundle (on the Jetson), or check the ones there."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from runtime.errors import ConfigError, SkyvoiceError

# The graphs that run per announcement; prompt_encoder/ref_encoder run once per voice and stay on ONNX Runtime
# unless named with --graphs.
DEFAULT_GRAPHS = ("gpt_prefill", "gpt_decode_step", "sovits_decoder")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("engines", help="Build TensorRT engines from a bundle (on the Jetson)")
    actions = parser.add_subparsers(dest="engines_action", metavar="ACTION", required=True)

    build = actions.add_parser("build", help="build BUNDLE/engines/<graph>.engine (+ .key.json) with TensorRT")
    build.add_argument("bundle", type=Path, help="bundle directory (e.g. ROOT/current)")
    build.add_argument("--graphs", default=",".join(DEFAULT_GRAPHS), help="comma-separated graph names (default: %(default)s)")
    build.add_argument(
        "--precision", choices=("auto", "fp32", "fp16"), default="auto",
        help="auto: INT8 where the graph carries Q/DQ (from 'skyvoice build --precision int8|auto'), FP16 elsewhere",
    )
    build.add_argument("--kv-capacity", type=int, default=None, help="decode-step cache rows (default: the manifest's gpt.kv_capacity)")
    build.add_argument("--workspace-mib", type=int, default=1024, help="TensorRT builder workspace (default: %(default)s MiB)")
    build.add_argument("--force", action="store_true", help="rebuild even when an engine's key already matches")
    build.set_defaults(func=run_build)

    check = actions.add_parser("check", help="static TensorRT readiness of BUNDLE's graphs and the state of its engines")
    check.add_argument("bundle", type=Path, help="bundle directory")
    check.set_defaults(func=run_check)


def _read_bundle(bundle: Path) -> dict:
    import json

    manifest_path = bundle / "manifest.json"
    try:
        return json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {manifest_path} ({exc}); pass a bundle directory built by 'skyvoice build'") from exc


def _engine_precision(requested: str, graph_entry: dict) -> str:
    if requested != "auto":
        return requested
    return "int8" if graph_entry.get("precision") == "int8" else "fp16"


def run_build(args: argparse.Namespace) -> int:
    from runtime.trt.build import DEFAULT_KV_CAPACITY, EngineBuildError, ShapeLimits, build_engine
    from runtime.trt.engine_key import EngineKeyError, check_engine, graph_sha256, probe_platform
    from runtime.trt.readiness import check_graph_file

    manifest = _read_bundle(args.bundle)
    graphs = manifest.get("graphs", {})
    wanted = [g.strip() for g in args.graphs.split(",") if g.strip()]
    unknown = [g for g in wanted if g not in graphs]
    if unknown:
        raise ConfigError(f"--graphs names {', '.join(unknown)}, not in {args.bundle}/manifest.json (has: {', '.join(sorted(graphs))})")
    try:
        platform = probe_platform()
    except EngineKeyError as exc:
        raise SkyvoiceError(f"cannot build engines here: {exc}") from exc
    capacity = args.kv_capacity or int(manifest.get("gpt", {}).get("kv_capacity", DEFAULT_KV_CAPACITY))
    limits = ShapeLimits(kv_capacity=capacity)
    print(f"TensorRT {platform.tensorrt}, CUDA {platform.cuda}, L4T {platform.l4t or 'none'} (JetPack {platform.jetpack or '?'}), "
          f"{platform.gpu_name} sm {platform.compute_capability}; KV capacity {capacity}")
    engines_dir = args.bundle / "engines"
    failures = 0
    for name in wanted:
        entry = graphs[name]
        onnx_path = args.bundle / entry["file"]
        engine_path = engines_dir / f"{name}.engine"
        readiness = check_graph_file(name, onnx_path, entry["file"])
        if not readiness.ok:
            errors = "; ".join(f.message for f in readiness.findings if f.severity == "error")
            print(f"{name}: skipped, not TensorRT-ready: {errors}", file=sys.stderr)
            failures += 1
            continue
        if not args.force and check_engine(engine_path, platform, graph_sha256(onnx_path)).ok:
            print(f"{name}: up to date ({engine_path})")
            continue
        precision = _engine_precision(args.precision, entry)
        print(f"{name}: building {precision} engine from {entry['file']} (minutes on a Jetson)")
        try:
            build_engine(
                onnx_path, engine_path, name, precision, platform,
                limits=limits, workspace_bytes=args.workspace_mib << 20, onnx_file=entry["file"],
                progress=lambda message, name=name: print(f"  {name}: {message}", file=sys.stderr, flush=True),
            )
        except EngineBuildError as exc:
            print(f"{name}: FAILED: {exc}", file=sys.stderr)
            failures += 1
            continue
        print(f"{name}: wrote {engine_path} ({engine_path.stat().st_size / 1e6:.1f} MB)")
    if failures:
        raise SkyvoiceError(f"{failures} engine(s) not built; the runtime keeps using ONNX Runtime for them")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from runtime.trt.engine_key import EngineKeyError, check_engine, graph_sha256, probe_platform
    from runtime.trt.readiness import check_bundle

    report = check_bundle(args.bundle)
    print(report.format())
    try:
        platform = probe_platform()
    except EngineKeyError as exc:
        print(f"engines: not checked ({exc})")
        return 0 if report.ok else 1
    manifest = _read_bundle(args.bundle)
    for name, entry in sorted(manifest.get("graphs", {}).items()):
        engine_path = args.bundle / "engines" / f"{name}.engine"
        match = check_engine(engine_path, platform, graph_sha256(args.bundle / entry["file"]))
        print(f"engine {name}: {'ok' if match.ok else match}")
    return 0 if report.ok else 1


def run(args: argparse.Namespace) -> int:  # the dispatcher's contract; each action sets its own func
    return run_check(args)
