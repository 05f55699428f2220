"""`GraphRunner`: run one graph by tensor name. ONNX Runtime here; TensorRT in `trt_runner.py` (Jetson).

`OrtRunner` shares one ONNX Runtime session per graph file (and settings) across the process: a second runner on the
same file reuses the loaded weights instead of loading them again. `bind` sets up ORT I/O binding over caller-owned
numpy buffers once (inputs and outputs bound by address, no copies) and returns a call that runs on them; the GPT
decode loop uses it for its KV cache and reuses one binding for every step until its buffers move.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from pathlib import Path
from typing import Callable, Final, Mapping, Optional, Protocol, Sequence

import numpy as np

from runtime.errors import SynthesisError
from runtime.synth.weight_views import load_weight_views

_LOGGER = logging.getLogger(__name__)

# Spinning worker threads cut a few hundred microseconds of wake-up per run, but burn a core between runs; on a
# shared 2-core box that starves the other pipeline stage (audio decode, playback). Off by default; the bench
# measures both (SKYVOICE_ORT_SPIN=1 turns it on).
DEFAULT_ALLOW_SPINNING = os.environ.get("SKYVOICE_ORT_SPIN", "0") == "1"

_ORT_ELEMENT_TYPES = {np.dtype(np.float32): np.float32, np.dtype(np.int64): np.int64, np.dtype(np.float16): np.float16,
                      np.dtype(np.int32): np.int32, np.dtype(np.bool_): np.bool_}


class GraphRunner(Protocol):
    """Named inputs in, named outputs out. `input_names`/`output_names` come from the graph itself."""

    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    backend: str  # e.g. "onnxruntime:CPUExecutionProvider" or "tensorrt"

    def run(self, inputs: Mapping[str, np.ndarray], outputs: Optional[Sequence[str]] = None) -> dict[str, np.ndarray]: ...


def default_providers() -> list[str]:
    """CUDA first where ONNX Runtime has it (Jetson with onnxruntime-gpu), else CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


class _SharedSession:
    """Holds one InferenceSession (and the weight views it was given, which must outlive it); weakly cached so it
    lives exactly as long as some runner uses it."""

    def __init__(self, session, views: Sequence = ()) -> None:
        self.session = session
        self.views = tuple(views)


_SESSIONS: "weakref.WeakValueDictionary[tuple, _SharedSession]" = weakref.WeakValueDictionary()
_SESSIONS_LOCK = threading.Lock()


# Lowered graph forms that need a newer ONNX Runtime than the package floor (measured: MatMulNBits with 8 bits
# fails to initialise in onnxruntime 1.21.1 and runs from 1.22.0).
MIN_ORT_FOR_PRECISION: Final = {"int8_block": (1, 22), "int8_column": (1, 22)}


def check_precision_supported(graph: str, precision: str, bundle_dir: str | os.PathLike) -> None:
    """Raise SynthesisError (one sentence: graph, form, versions, what to do) when this onnxruntime is too old for a
    bundle graph's `precision` (the manifest's per-graph field)."""
    need = MIN_ORT_FOR_PRECISION.get(precision)
    if need is None:
        return
    import onnxruntime as ort

    have = tuple(int(part) for part in ort.__version__.split(".")[:2] if part.isdigit())
    if have < need:
        raise SynthesisError(
            f"{bundle_dir}: graph {graph} is {precision}, which needs onnxruntime >= {need[0]}.{need[1]} but this box "
            f"has {ort.__version__}; upgrade onnxruntime or rebuild the bundle without --target cpu"
        )


def session_options(intra_op_threads: int, allow_spinning: bool = DEFAULT_ALLOW_SPINNING):
    """The runtime's ORT settings for a session (the build times its candidate graphs under the same ones)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    return options


def _shared_session(path: Path, providers: tuple[str, ...], intra_op_threads: int, allow_spinning: bool) -> _SharedSession:
    import onnxruntime as ort

    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, providers, intra_op_threads, allow_spinning)
    with _SESSIONS_LOCK:
        holder = _SESSIONS.get(key)
        if holder is not None:
            return holder
        options = session_options(intra_op_threads, allow_spinning)
        views = [(name, ort.OrtValue.ortvalue_from_numpy(array)) for name, array in load_weight_views(path).items()]
        for name, value in views:  # laid out from bytes the bundle stores once (runtime/synth/weight_views.py)
            options.add_initializer(name, value)
        try:
            session = ort.InferenceSession(str(path), sess_options=options, providers=list(providers))
        except Exception as exc:  # ORT raises its own exception types for corrupt or unsupported graphs
            raise SynthesisError(f"ONNX Runtime cannot load graph {path}: {exc}") from exc
        holder = _SharedSession(session, [value for _, value in views])
        _SESSIONS[key] = holder
        return holder


class OrtRunner:
    """An ONNX Runtime session for one graph file, shared process-wide with other runners on the same file."""

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        providers: Optional[Sequence[str]] = None,
        intra_op_threads: int = 0,
        allow_spinning: Optional[bool] = None,
    ) -> None:
        path = Path(path)
        if not path.is_file():
            raise SynthesisError(f"graph file {path} does not exist; rebuild the bundle with 'skyvoice build'")
        spin = DEFAULT_ALLOW_SPINNING if allow_spinning is None else bool(allow_spinning)
        self._holder = _shared_session(path, tuple(providers or default_providers()), int(intra_op_threads), spin)
        self.session = self._holder.session
        self.path = path
        self.input_names = tuple(i.name for i in self.session.get_inputs())
        self.output_names = tuple(o.name for o in self.session.get_outputs())
        self.backend = "onnxruntime:" + ",".join(self.session.get_providers())
        _LOGGER.info("graph loaded file=%s backend=%s", path.name, self.backend)

    def run(self, inputs: Mapping[str, np.ndarray], outputs: Optional[Sequence[str]] = None) -> dict[str, np.ndarray]:
        names = list(outputs or self.output_names)
        values = self.session.run(names, dict(inputs))
        return dict(zip(names, values))

    def bind(self, inputs: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> Callable[[], None]:
        """Bind every input and output by address once; the returned call runs the graph on whatever those buffers
        hold then (the caller keeps them alive and in place, and binds again after moving any). CPU memory only."""
        binding = self.session.io_binding()
        for name, array in inputs.items():
            _bind(binding.bind_input, name, array)
        for name, array in outputs.items():
            _bind(binding.bind_output, name, array)
        session = self.session
        return lambda: session.run_with_iobinding(binding)


def _bind(bind, name: str, array: np.ndarray) -> None:
    if not array.flags.c_contiguous:
        raise SynthesisError(f"tensor {name} is not contiguous; I/O binding needs a contiguous buffer")
    bind(name, "cpu", 0, _ORT_ELEMENT_TYPES[array.dtype], list(array.shape), array.ctypes.data)
