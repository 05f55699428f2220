"""The one place graphs are traced to ONNX: legacy TorchScript exporter, opset from the spec, named dynamic axes,
then a check that the result is flat (no Loop/If/Scan) and within the opset, as TensorRT needs."""

from __future__ import annotations

import os
import warnings
from typing import Final, Mapping

import numpy as np
import onnx
import torch
from torch import nn

from export.errors import ExportError
from export.graphs.spec import GraphSpec

FORBIDDEN_OPS: Final = frozenset({"Loop", "If", "Scan"})


def check_graph_ops(path: str | os.PathLike, spec: GraphSpec) -> None:
    """Raise ExportError if the graph has control flow or an opset above the spec's."""
    graph = onnx.load(str(path), load_external_data=False)
    opset = max((o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset > spec.opset:
        raise ExportError(f"graph {path} uses opset {opset}, above the allowed {spec.opset}; export with opset_version={spec.opset}")
    found = sorted({n.op_type for n in graph.graph.node} & FORBIDDEN_OPS)
    if found:
        raise ExportError(f"graph {path} contains control-flow nodes {found}; TensorRT needs a flat graph, fix the reference module")


def trace_to_onnx(module: nn.Module, spec: GraphSpec, dummy: Mapping[str, np.ndarray], out_path: str | os.PathLike) -> None:
    """Trace `module(*inputs in spec order)` into `out_path` and check the graph is flat."""
    args = tuple(torch.from_numpy(np.asarray(dummy[name])) for name in spec.inputs)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter is our choice (flat graphs, opset 17)
        torch.onnx.export(
            module.eval(),
            args,
            str(out_path),
            input_names=list(spec.inputs),
            output_names=list(spec.outputs),
            dynamic_axes={k: dict(v) for k, v in spec.dynamic_axes.items()},
            opset_version=spec.opset,
            do_constant_folding=True,
            dynamo=False,
        )
    check_graph_ops(out_path, spec)
