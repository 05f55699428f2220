"""Build a TensorRT engine from one bundle graph with the TensorRT Python API (on the Jetson, TensorRT 10.x).

Prefill gets an optimization profile over prompt length; the decode step gets static shapes at the bundle's KV
capacity (min = opt = max), so it can be captured as a CUDA graph. An INT8 graph carries its own Q/DQ nodes (explicit
quantization): the build enables INT8 (to honour them) plus FP16 for everything between them; `fp16` enables FP16
only; `fp32` neither. No implicit calibrator is ever used (deprecated in 10.1, gone in 11). The engine is written
with its key (`engine_key.py`) beside it. tensorrt is imported inside the functions that need it.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Final, Mapping, Optional, Sequence

from runtime.errors import SkyvoiceError
from runtime.trt.engine_key import EngineKey, PlatformInfo, graph_sha256, write_key

_LOGGER = logging.getLogger(__name__)

PRECISIONS: Final = ("fp32", "fp16", "int8")
DEFAULT_WORKSPACE_BYTES: Final = 1 << 30  # 1 GiB: fits an 8 GB Orin Nano next to the runtime
DEFAULT_KV_CAPACITY: Final = 2048  # cache rows (phones + prompt tokens + generated tokens)

Shape = tuple[int, ...]
ProfileShapes = dict[str, tuple[Shape, Shape, Shape]]


class EngineBuildError(SkyvoiceError):
    """TensorRT could not parse a graph or build its engine."""


@dataclass(frozen=True)
class ShapeLimits:
    """Ranges for the dynamic axes: (min, opt, max). Kernels are tuned for opt."""

    kv_capacity: int = DEFAULT_KV_CAPACITY
    phones: tuple[int, int, int] = (1, 64, 512)
    prompt_tokens: tuple[int, int, int] = (1, 200, 1024)
    semantic_tokens: tuple[int, int, int] = (1, 250, 1500)
    noise_frames: tuple[int, int, int] = (2, 500, 6002)  # >= T' = 2N/speed + 1 for speed >= 0.5
    spectrogram_frames: tuple[int, int, int] = (16, 300, 1000)  # 50 frames/s: 0.3 s .. 20 s of reference audio
    ssl_frames: tuple[int, int, int] = (16, 300, 1000)  # 50 frames/s of SSL features


def _dynamic_ranges(graph: str, limits: ShapeLimits) -> Mapping[tuple[str, int], tuple[int, int, int]]:
    """(input name or per-layer prefix, axis) -> range, for each graph of docs/architecture.md."""
    cap = limits.kv_capacity
    return {
        "gpt_prefill": {("phones", 1): limits.phones, ("bert_features", 1): limits.phones, ("prompt_tokens", 1): limits.prompt_tokens},
        # the decode step is static at the cache capacity (rows >= kv_len are masked)
        "gpt_decode_step": {("k_cache_", 2): (cap, cap, cap), ("v_cache_", 2): (cap, cap, cap)},
        "sovits_decoder": {("semantic_tokens", 1): limits.semantic_tokens, ("phones", 1): limits.phones, ("noise", 2): limits.noise_frames},
        "ref_encoder": {("spectrogram", 2): limits.spectrogram_frames},
        "prompt_encoder": {("ssl_features", 2): limits.ssl_frames},
    }.get(graph, {})


def _range_for(ranges, name: str, axis: int) -> Optional[tuple[int, int, int]]:
    if (name, axis) in ranges:
        return ranges[(name, axis)]
    for (key, key_axis), value in ranges.items():
        if key.endswith("_") and key_axis == axis and name.startswith(key) and name[len(key):].isdigit():
            return value
    return None


def profile_shapes(graph: str, input_dims: Mapping[str, Sequence[Optional[int]]], limits: ShapeLimits = ShapeLimits()) -> ProfileShapes:
    """min/opt/max shapes for every input with a dynamic axis (None or -1 in `input_dims`); static inputs are skipped."""
    ranges = _dynamic_ranges(graph, limits)
    shapes: ProfileShapes = {}
    for name, dims in input_dims.items():
        if all(d is not None and d >= 0 for d in dims):
            continue
        spans = []
        for axis, dim in enumerate(dims):
            span = (dim, dim, dim) if dim is not None and dim >= 0 else _range_for(ranges, name, axis)
            if span is None:
                raise EngineBuildError(
                    f"graph {graph}: input '{name}' axis {axis} is dynamic but has no profile range; "
                    "re-export it with the docs/architecture.md shapes"
                )
            spans.append(span)
        shapes[name] = tuple(tuple(span[i] for span in spans) for i in range(3))
    return shapes


def onnx_input_dims(onnx_path: str | os.PathLike) -> dict[str, tuple[Optional[int], ...]]:
    """Graph inputs (not initializers) with None for symbolic dims; reads only the graph structure."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    initializers = {init.name for init in model.graph.initializer}
    return {
        vi.name: tuple(d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim)
        for vi in model.graph.input
        if vi.name not in initializers
    }


ProgressCallback = Callable[[str], None]


def _make_progress_monitor(trt, report: ProgressCallback):
    """A `trt.IProgressMonitor` that reports phase starts and every tenth step (TensorRT >= 10.0)."""

    class _Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._steps: dict[str, int] = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            self._steps[phase_name] = num_steps
            report(f"{phase_name} ({num_steps} steps)")

        def step_complete(self, phase_name, step):
            total = self._steps.get(phase_name, 0)
            if total >= 10 and (step + 1) % max(1, total // 10) == 0:
                report(f"{phase_name}: {step + 1}/{total}")
            return True  # False would cancel the build

        def phase_finish(self, phase_name):
            self._steps.pop(phase_name, None)

    return _Monitor()


def _parse(trt, builder, logger, onnx_path: Path, strongly_typed: bool):
    flags = 0
    major = int(trt.__version__.split(".")[0])
    if major < 10:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    if strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):  # from file: external weights next to the graph are found
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        for error in errors:
            _LOGGER.error("onnx parser file=%s error=%s", onnx_path.name, error)
        raise EngineBuildError(f"TensorRT {trt.__version__} cannot parse {onnx_path}: {'; '.join(errors) or 'unknown error'}")
    return network, parser


def build_engine(
    onnx_path: str | os.PathLike,
    engine_path: str | os.PathLike,
    graph: str,
    precision: str,
    platform: PlatformInfo,
    *,
    limits: ShapeLimits = ShapeLimits(),
    workspace_bytes: int = DEFAULT_WORKSPACE_BYTES,
    strongly_typed: bool = False,
    onnx_file: str = "",
    progress: Optional[ProgressCallback] = None,
) -> EngineKey:
    """Parse `onnx_path`, build, write `engine_path` and its key; return the key. Raises EngineBuildError.

    `onnx_file` is the graph's path inside the bundle as the manifest lists it (default `graphs/<name>`).
    """
    import tensorrt as trt

    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if precision not in PRECISIONS:
        raise EngineBuildError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if not onnx_path.is_file():
        raise EngineBuildError(f"graph file {onnx_path} does not exist; rebuild or reinstall the bundle")
    report = progress or (lambda message: _LOGGER.info("trt build graph=%s %s", graph, message))
    started = time.monotonic()

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network, _parser = _parse(trt, builder, logger, onnx_path, strongly_typed)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    if not strongly_typed:  # a strongly typed network takes its precisions from the ONNX; flags are refused
        if precision in ("fp16", "int8"):
            config.set_flag(trt.BuilderFlag.FP16)
        if precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)  # honours the Q/DQ nodes; no calibrator (explicit quantization)
    if hasattr(trt, "IProgressMonitor"):
        config.progress_monitor = _make_progress_monitor(trt, report)

    dims = {network.get_input(i).name: tuple(d if d >= 0 else None for d in network.get_input(i).shape) for i in range(network.num_inputs)}
    shapes = profile_shapes(graph, dims, limits)
    if shapes:
        profile = builder.create_optimization_profile()
        for name, (low, opt, high) in shapes.items():
            profile.set_shape(name, low, opt, high)
        config.add_optimization_profile(profile)
    report(f"parsed {network.num_layers} layers, {network.num_inputs} inputs; profiles for {len(shapes)} inputs; precision {precision}")

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT {trt.__version__} failed to build an engine for {onnx_path}; see the [TRT] errors above")
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = engine_path.with_name(engine_path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(serialized)
    os.replace(tmp, engine_path)
    key = EngineKey(platform, graph, onnx_file or f"graphs/{onnx_path.name}", graph_sha256(onnx_path), precision, shapes)
    write_key(engine_path, key)
    _LOGGER.info(
        "trt engine built graph=%s precision=%s bytes=%d seconds=%.1f trt=%s",
        graph, precision, engine_path.stat().st_size, time.monotonic() - started, trt.__version__,
    )
    return key
