"""TensorRT backend (Jetson): `TrtRunner` (a GraphRunner), `TrtDecodeStep` (KV cache on the device, CUDA graph),
and `select_runner`, which uses TensorRT when an engine with a matching key exists and ONNX Runtime otherwise.

Name-based I/O only (`set_input_shape`, `set_tensor_address`, `execute_async_v3`: TensorRT 8.5 through 10.x).
pycuda owns the device buffers and the stream; `pycuda.autoprimaryctx` makes TensorRT and pycuda share the device's
primary context. tensorrt and pycuda are imported inside functions, so this module imports on any machine.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence, Union

import numpy as np

from runtime.errors import SynthesisError
from runtime.synth.runner import GraphRunner, OrtRunner
from runtime.trt.engine_key import EngineKeyError, PlatformInfo, check_engine, graph_sha256, probe_platform, read_key

_LOGGER = logging.getLogger(__name__)

ENGINE_SUFFIX = ".engine"


def engine_path_for(engines_dir: str | os.PathLike, graph_name: str) -> Path:
    """`engines/<graph>.engine` (bundle format); its key sits beside it as `<graph>.engine.key.json`."""
    return Path(engines_dir) / f"{graph_name}{ENGINE_SUFFIX}"


class _DeviceBuffer:
    """One device allocation that grows on demand (pycuda `mem_alloc`)."""

    def __init__(self, cuda, nbytes: int) -> None:
        self._cuda = cuda
        self.nbytes = max(int(nbytes), 1)
        self.allocation = cuda.mem_alloc(self.nbytes)

    @property
    def ptr(self) -> int:
        return int(self.allocation)

    def ensure(self, nbytes: int) -> bool:
        """Grow to at least `nbytes`; True when the address changed."""
        if nbytes <= self.nbytes:
            return False
        self.allocation.free()
        self.nbytes = int(nbytes)
        self.allocation = self._cuda.mem_alloc(self.nbytes)
        return True


_DTYPES_BY_TRT_NAME = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "INT64": np.int64, "BOOL": np.bool_, "UINT8": np.uint8}


def _numpy_dtype(trt, trt_dtype) -> np.dtype:
    """numpy dtype of a TensorRT tensor type (trt.nptype, with a table for types older bindings do not map)."""
    try:
        return np.dtype(trt.nptype(trt_dtype))
    except (TypeError, KeyError):
        name = str(trt_dtype).rsplit(".", 1)[-1].upper()
        if name not in _DTYPES_BY_TRT_NAME:
            raise SynthesisError(f"TensorRT I/O type {trt_dtype} has no numpy equivalent; export the graph with float32/int64 I/O") from None
        return np.dtype(_DTYPES_BY_TRT_NAME[name])


def _load_engine(engine_path: Path):
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
    if engine is None:  # version or device mismatch: TensorRT logs the reason and returns None
        raise SynthesisError(
            f"TensorRT {trt.__version__} cannot deserialize {engine_path}; rebuild it with 'skyvoice engines build'"
        )
    return trt, runtime, engine


class TrtRunner:
    """GraphRunner over one TensorRT engine: named numpy inputs in, named numpy outputs out."""

    def __init__(self, engine_path: str | os.PathLike) -> None:
        import pycuda.autoprimaryctx  # noqa: F401  (retains the primary context TensorRT also uses)
        import pycuda.driver as cuda

        self.path = Path(engine_path)
        self._cuda = cuda
        self._trt, self._runtime, self.engine = _load_engine(self.path)
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise SynthesisError(f"TensorRT could not create an execution context for {self.path} (out of device memory?)")
        self.stream = cuda.Stream()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == self._trt.TensorIOMode.INPUT for n in names}
        self.input_names = tuple(n for n in names if is_input[n])
        self.output_names = tuple(n for n in names if not is_input[n])
        self.dtypes = {n: _numpy_dtype(self._trt, self.engine.get_tensor_dtype(n)) for n in names}
        self._buffers: dict[str, _DeviceBuffer] = {}
        self.backend = f"tensorrt:{self._trt.__version__}"
        _LOGGER.info("graph loaded file=%s backend=%s inputs=%d outputs=%d", self.path.name, self.backend, len(self.input_names), len(self.output_names))

    def device_ptr(self, name: str) -> int:
        """Device address of an I/O tensor's buffer (after it has been bound)."""
        return self._buffers[name].ptr

    def buffer(self, name: str, nbytes: int) -> _DeviceBuffer:
        buf = self._buffers.get(name)
        if buf is None:
            buf = self._buffers[name] = _DeviceBuffer(self._cuda, nbytes)
        else:
            buf.ensure(nbytes)
        return buf

    def _bind_inputs(self, inputs: Mapping[str, np.ndarray]) -> None:
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise SynthesisError(f"engine {self.path.name} needs inputs {', '.join(missing)}")
        for name in self.input_names:
            array = np.ascontiguousarray(inputs[name], dtype=self.dtypes[name])
            if not self.context.set_input_shape(name, array.shape):
                raise SynthesisError(f"engine {self.path.name}: input '{name}' shape {array.shape} is outside its optimization profile; rebuild with larger limits")
            buf = self.buffer(name, array.nbytes)
            self._cuda.memcpy_htod_async(buf.ptr, array, self.stream)
            self.context.set_tensor_address(name, buf.ptr)

    def _bind_outputs(self) -> dict[str, tuple[int, ...]]:
        shapes = {}
        for name in self.output_names:
            shape = tuple(self.context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise SynthesisError(f"engine {self.path.name}: output '{name}' shape {shape} is unresolved; set every input shape")
            shapes[name] = shape
            buf = self.buffer(name, int(np.prod(shape)) * self.dtypes[name].itemsize)
            self.context.set_tensor_address(name, buf.ptr)
        return shapes

    def execute(self) -> None:
        if not self.context.execute_async_v3(self.stream.handle):
            raise SynthesisError(f"TensorRT failed to enqueue {self.path.name}; see the [TRT] errors above")

    def run(self, inputs: Mapping[str, np.ndarray], outputs: Optional[Sequence[str]] = None) -> dict[str, np.ndarray]:
        self._bind_inputs(inputs)
        shapes = self._bind_outputs()
        self.execute()
        results = {}
        for name in outputs or self.output_names:
            host = self._cuda.pagelocked_empty(shapes[name], self.dtypes[name])
            self._cuda.memcpy_dtoh_async(host, self._buffers[name].ptr, self.stream)
            results[name] = host
        self.stream.synchronize()
        return {name: np.array(value) for name, value in results.items()}


@dataclass(frozen=True)
class KvLayout:
    n_layers: int
    capacity: int  # C: rows per layer cache, the engine's static cache shape
    width: int  # D
    heads: int = 1  # H: each layer's cache is head-major [1, H, C, D/H]

    @property
    def head_dim(self) -> int:
        return self.width // self.heads


class TrtDecodeStep:
    """The GPT decode step on TensorRT with the KV cache resident on the device.

    Buffers never move after construction: `k_cache_i`/`v_cache_i` head-major [1,H,C,D/H] per layer, the scalar
    inputs, `logits` and `k_new`/`v_new` [L,1,1,D]. Each step uploads three int64 scalars, replays the step (a CUDA
    graph once it has been captured, else `execute_async_v3`), scatters the new K/V row into row `kv_len` of every
    head with one strided device-to-device copy per layer and cache, and downloads the logits: O(L*D) bytes of
    traffic per token, never the cache.
    """

    def __init__(self, runner: TrtRunner, layout: KvLayout, *, use_cuda_graph: bool = True) -> None:
        if layout.width % layout.heads:
            raise SynthesisError(f"d_model {layout.width} is not a multiple of n_head {layout.heads}; the bundle's manifest is inconsistent")
        self.runner, self.layout = runner, layout
        cuda, ctx = runner._cuda, runner.context
        self._cuda = cuda
        self.itemsize = runner.dtypes["k_cache_0"].itemsize
        self.row_bytes = layout.width * self.itemsize  # one token's K (or V) row, all heads
        self.head_row_bytes = layout.head_dim * self.itemsize  # one token's row in one head
        self.head_bytes = layout.capacity * self.head_row_bytes  # one head's whole cache (the pitch between heads)
        cache_bytes = layout.heads * self.head_bytes
        self.caches: dict[str, _DeviceBuffer] = {}
        for i in range(layout.n_layers):
            for kind in ("k", "v"):
                name = f"{kind}_cache_{i}"
                buf = runner.buffer(name, cache_bytes)
                cuda.memset_d8(buf.ptr, 0, cache_bytes)
                ctx.set_input_shape(name, (1, layout.heads, layout.capacity, layout.head_dim))
                ctx.set_tensor_address(name, buf.ptr)
                self.caches[name] = buf
        self._scalars: dict[str, tuple[np.ndarray, _DeviceBuffer]] = {}
        for name, shape in (("token", (1, 1)), ("audio_position", (1,)), ("kv_len", (1,))):
            host = cuda.pagelocked_empty(shape, runner.dtypes[name])
            buf = runner.buffer(name, host.nbytes)
            ctx.set_input_shape(name, shape)
            ctx.set_tensor_address(name, buf.ptr)
            self._scalars[name] = (host, buf)
        self._output_shapes = runner._bind_outputs()
        self._logits_host = cuda.pagelocked_empty(self._output_shapes["logits"], runner.dtypes["logits"])
        self._graph_exec = None
        self._use_cuda_graph = use_cuda_graph
        self._steps = 0

    def _strided_copy(self, dst: int, src, src_pitch: int, width: int, *, src_on_device: bool) -> None:
        """Copy `heads` runs of `width` bytes (`src_pitch` apart) to `dst`, one head's pitch apart, on the stream."""
        copy = self._cuda.Memcpy2D()
        if src_on_device:
            copy.set_src_device(src)
        else:
            copy.set_src_host(src)
        copy.set_dst_device(dst)
        copy.src_pitch, copy.dst_pitch = src_pitch, self.head_bytes
        copy.width_in_bytes, copy.height = width, self.layout.heads
        copy(self.runner.stream)

    def load_prefill(self, k_prefill: np.ndarray, v_prefill: np.ndarray) -> int:
        """Copy prefill K/V rows [L,1,R,D] into rows 0..R-1 of every head of every layer; return R (the next kv_len)."""
        rows = k_prefill.shape[2]
        if rows > self.layout.capacity:
            raise SynthesisError(f"prompt needs {rows} cache rows, the engine holds {self.layout.capacity}; shorten the text or rebuild with a larger --kv-capacity")
        lay = self.layout
        dtype = self.runner.dtypes["k_cache_0"]
        staged = []  # page-locked (asynchronous 2D copies need it), alive until the stream has synchronized
        for kind, array in (("k", k_prefill), ("v", v_prefill)):
            # [L,1,R,D] → [L,H,R,hd] on the host; each head's R rows then land at the start of its device pitch
            heads_first = self._cuda.pagelocked_empty((lay.n_layers, lay.heads, rows, lay.head_dim), dtype)
            heads_first[...] = array.reshape(lay.n_layers, rows, lay.heads, lay.head_dim).transpose(0, 2, 1, 3)
            staged.append(heads_first)
            for i in range(lay.n_layers):
                run = rows * self.head_row_bytes
                self._strided_copy(self.caches[f"{kind}_cache_{i}"].ptr, heads_first[i], run, run, src_on_device=False)
        self.runner.stream.synchronize()
        return rows

    def _launch(self) -> None:
        if self._graph_exec is not None:
            self._graph_exec.launch(self.runner.stream)
            return
        self.runner.execute()
        self._steps += 1
        if self._use_cuda_graph and self._steps == 2:  # after a warm-up enqueue, as TensorRT requires
            self._capture()

    def _capture(self) -> None:
        stream = self.runner.stream
        try:
            stream.synchronize()
            stream.begin_capture()
            try:
                self.runner.execute()
            finally:
                graph = stream.end_capture()
            self._graph_exec = graph.instantiate()
            _LOGGER.info("cuda graph captured engine=%s", self.runner.path.name)
        except Exception as exc:  # capture is an optimisation: some TensorRT tactics are not capturable
            self._use_cuda_graph = False
            _LOGGER.warning("cuda graph capture unavailable engine=%s reason=%s; running execute_async_v3", self.runner.path.name, exc)

    def step(self, token: int, audio_position: int, kv_len: int) -> np.ndarray:
        """One token: returns logits [1,V] (host) and appends K/V at row `kv_len` on the device."""
        if kv_len >= self.layout.capacity:
            raise SynthesisError(f"KV cache full at {kv_len} rows; rebuild the engines with a larger --kv-capacity")
        cuda, stream = self._cuda, self.runner.stream
        for name, value in (("token", token), ("audio_position", audio_position), ("kv_len", kv_len)):
            host, buf = self._scalars[name]
            host.fill(value)
            cuda.memcpy_htod_async(buf.ptr, host, stream)
        self._launch()
        k_new, v_new = self.runner.device_ptr("k_new"), self.runner.device_ptr("v_new")
        offset = kv_len * self.head_row_bytes
        for i in range(self.layout.n_layers):
            for kind, rows_ptr in (("k", k_new), ("v", v_new)):
                self._strided_copy(
                    self.caches[f"{kind}_cache_{i}"].ptr + offset, rows_ptr + i * self.row_bytes, self.head_row_bytes, self.head_row_bytes, src_on_device=True
                )
        cuda.memcpy_dtoh_async(self._logits_host, self.runner.device_ptr("logits"), stream)
        stream.synchronize()
        return np.array(self._logits_host)


@dataclass(frozen=True)
class RunnerChoice:
    runner: GraphRunner
    backend: str
    reason: str  # why TensorRT was not used ("" when it was)


def _ort_fallback(graph_path: Path, providers: Optional[Sequence[str]], reason: str) -> RunnerChoice:
    runner = OrtRunner(graph_path, providers=providers)
    _LOGGER.info("backend graph=%s backend=%s", graph_path.stem, runner.backend)
    return RunnerChoice(runner, runner.backend, reason)


def select_runner(
    graph_path: str | os.PathLike,
    engines_dir: Optional[str | os.PathLike],
    *,
    graph_name: Optional[str] = None,
    providers: Optional[Sequence[str]] = None,
    platform: Optional[PlatformInfo] = None,
    trt_runner_factory: Callable[[Path], GraphRunner] = TrtRunner,
) -> RunnerChoice:
    """TensorRT when `engines_dir/<graph>.engine` exists with a key matching this box and this ONNX; else ONNX Runtime.

    The reason for not using TensorRT is logged once, at warning level when an engine exists but cannot be used
    (stale, other box, unloadable) and at info level when there is simply none. The backend actually running is
    always logged. `platform` (tests, or a caller that probed once) skips probing the GPU.
    """
    graph_path = Path(graph_path)
    name = graph_name or graph_path.stem
    if engines_dir is None:
        return _ort_fallback(graph_path, providers, "no engines directory")
    engine_path = engine_path_for(engines_dir, name)
    if not engine_path.is_file():
        reason = f"no TensorRT engine at {engine_path}"
        _LOGGER.info("tensorrt not used graph=%s reason=%s", name, reason)
        return _ort_fallback(graph_path, providers, reason)
    if platform is None:
        try:
            platform = probe_platform()
        except EngineKeyError as exc:  # no tensorrt module, or no GPU
            reason = f"TensorRT is not usable here: {exc}"
            _LOGGER.warning("tensorrt not used graph=%s reason=%s; falling back to ONNX Runtime", name, reason)
            return _ort_fallback(graph_path, providers, reason)
    match = check_engine(engine_path, platform, graph_sha256(graph_path))
    if not match.ok:
        reason = f"engine {engine_path.name} does not match: {match}; run 'skyvoice engines build'"
        _LOGGER.warning("tensorrt not used graph=%s reason=%s; falling back to ONNX Runtime", name, reason)
        return _ort_fallback(graph_path, providers, reason)
    try:
        runner = trt_runner_factory(engine_path)
    except Exception as exc:  # deserialization/context errors from TensorRT or CUDA: fall back, never fail synthesis
        reason = f"engine {engine_path.name} failed to load ({type(exc).__name__}: {exc}); rebuild it with 'skyvoice engines build'"
        _LOGGER.warning("tensorrt not used graph=%s reason=%s; falling back to ONNX Runtime", name, reason)
        return _ort_fallback(graph_path, providers, reason)
    _LOGGER.info("backend graph=%s backend=%s engine=%s", name, runner.backend, engine_path.name)
    return RunnerChoice(runner, runner.backend, "")


def select_decode_step(
    graph_path: str | os.PathLike,
    engines_dir: Optional[str | os.PathLike],
    *,
    n_layer: int,
    d_model: int,
    capacity: int,
    n_head: int = 1,
    providers: Optional[Sequence[str]] = None,
    platform: Optional[PlatformInfo] = None,
) -> tuple[Union[GraphRunner, TrtDecodeStep], str]:
    """The decode step for `GptDecoder`: a device-resident `TrtDecodeStep` (a KvStep) when a matching engine loads,
    else the ONNX Runtime `GraphRunner` (GptDecoder wraps it in a host KV cache). Returns (step, backend).

    The engine's cache capacity is fixed at build time; it is read from the engine key and logged when it differs
    from `capacity` (the bundle's gpt.kv_capacity).
    """
    choice = select_runner(graph_path, engines_dir, graph_name="gpt_decode_step", providers=providers, platform=platform)
    if not isinstance(choice.runner, TrtRunner):
        return choice.runner, choice.backend
    engine_capacity = capacity
    try:
        profile = read_key(choice.runner.path).profiles.get("k_cache_0")
        if profile:
            engine_capacity = int(profile[0][2])  # k_cache_0 [1,H,C,D/H]: min shape's C
    except EngineKeyError:
        pass  # select_runner has just read this key; keep the bundle's capacity
    if engine_capacity != capacity:
        _LOGGER.warning("decode engine capacity=%d differs from the bundle's kv_capacity=%d; using the engine's", engine_capacity, capacity)
    step = TrtDecodeStep(choice.runner, KvLayout(n_layer, engine_capacity, d_model, n_head))
    return step, choice.backend
