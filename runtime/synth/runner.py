"""`GraphRunner`: run one graph by tensor name. ONNX Runtime here; TensorRT in `trt_runner.py` (Jetson)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping, Optional, Protocol, Sequence

import numpy as np

from runtime.errors import SynthesisError

_LOGGER = logging.getLogger(__name__)


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


class OrtRunner:
    """One process-wide ONNX Runtime session per graph file."""

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        providers: Optional[Sequence[str]] = None,
        intra_op_threads: int = 0,
    ) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise SynthesisError(f"graph file {path} does not exist; rebuild the bundle with 'skyvoice build'")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=list(providers or default_providers()))
        except Exception as exc:  # ORT raises its own exception types for corrupt or unsupported graphs
            raise SynthesisError(f"ONNX Runtime cannot load graph {path}: {exc}") from exc
        self.path = path
        self.input_names = tuple(i.name for i in self.session.get_inputs())
        self.output_names = tuple(o.name for o in self.session.get_outputs())
        self.backend = "onnxruntime:" + ",".join(self.session.get_providers())
        _LOGGER.info("graph loaded file=%s backend=%s", path.name, self.backend)

    def run(self, inputs: Mapping[str, np.ndarray], outputs: Optional[Sequence[str]] = None) -> dict[str, np.ndarray]:
        names = list(outputs or self.output_names)
        values = self.session.run(names, dict(inputs))
        return dict(zip(names, values))
