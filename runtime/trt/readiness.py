"""Static TensorRT readiness: can TensorRT 10.3's ONNX parser take each graph of a bundle, with the intended shapes?

Runs anywhere (CI, a workstation, the box) with only the `onnx` package: no TensorRT, no GPU. Checks per graph:
every node's op type (subgraphs included) is in the parser's operator matrix (`supported_ops.py`), the opset is in
the parser's range, no Loop/If/Scan in the GPT decode path, Q/DQ zero points are all zero (TensorRT is symmetric only),
and each input has the static/dynamic dims the runtime and the engine build expect (`docs/architecture.md`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Iterator, Mapping, Optional, Union

import numpy as np

from runtime.trt.supported_ops import (
    MAX_OPSET,
    MIN_OPSET,
    SUPPORTED_OPS,
    TENSORRT_OPS_SOURCE,
    TENSORRT_OPS_VERSION,
    UNSUPPORTED_OPS,
)

_LOGGER = logging.getLogger(__name__)

DYN: Final = "dyn"  # an axis that must be dynamic in the ONNX (a TensorRT profile range covers it)
ANY: Final = "any"  # an axis whose size the check does not care about (model width, for instance)
DimSpec = Union[int, str]

CONTROL_FLOW_OPS: Final = frozenset({"Loop", "If", "Scan"})
# The GPT runs once per token: a Loop/If there defeats static shapes and CUDA-graph capture of the decode step.
DECODE_PATH_GRAPHS: Final = frozenset({"gpt_prefill", "gpt_decode_step"})
QDQ_OPS: Final = frozenset({"QuantizeLinear", "DequantizeLinear"})

# Intended input shapes per graph (docs/architecture.md). Inputs matched by exact name, or by prefix for the
# per-layer caches (`k_cache_0`, `v_cache_11`, ...). Graphs not listed get the operator checks only.
EXPECTED_INPUTS: Final[Mapping[str, Mapping[str, tuple[DimSpec, ...]]]] = {
    "gpt_prefill": {
        "phones": (1, DYN),
        "bert_features": (1, DYN, 1024),
        "prompt_tokens": (1, DYN),
    },
    "gpt_decode_step": {
        "token": (1, 1),
        "audio_position": (1,),
        "kv_len": (1,),
        "k_cache_": (1, ANY, DYN, ANY),  # head-major [1, H, C, D/H]
        "v_cache_": (1, ANY, DYN, ANY),
    },
    "sovits_decoder": {
        "semantic_tokens": (1, DYN),
        "phones": (1, DYN),
        "ge": (1, ANY, 1),
        "noise": (1, ANY, DYN),  # inter_channels (192 in v2)
        "noise_scale": (1,),
        "speed": (1,),
    },
    "ref_encoder": {
        "spectrogram": (1, 1025, DYN),
    },
    "prompt_encoder": {
        "ssl_features": (1, ANY, DYN),
    },
}


@dataclass(frozen=True)
class Finding:
    """One problem (error) or remark (warning) about one graph."""

    severity: str  # "error" or "warning"
    check: str  # "operators", "opset", "control_flow", "quantization", "shapes", "load"
    message: str


@dataclass(frozen=True)
class GraphReadiness:
    name: str
    file: str
    node_count: int
    op_types: tuple[str, ...]
    findings: tuple[Finding, ...] = ()

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)


@dataclass(frozen=True)
class ReadinessReport:
    bundle: str
    graphs: tuple[GraphReadiness, ...]
    findings: tuple[Finding, ...] = field(default_factory=tuple)  # bundle-level (no graphs found, bad manifest)

    @property
    def ok(self) -> bool:
        return bool(self.graphs) and all(g.ok for g in self.graphs) and not any(
            f.severity == "error" for f in self.findings
        )

    def format(self) -> str:
        """Human-readable lines for `skyvoice doctor --bundle`."""
        lines = [f"TensorRT {TENSORRT_OPS_VERSION} readiness of {self.bundle} (operator list: {TENSORRT_OPS_SOURCE})"]
        for finding in self.findings:
            lines.append(f"  {finding.severity}: {finding.message}")
        for graph in self.graphs:
            status = "ok" if graph.ok else "NOT READY"
            lines.append(f"  {graph.name:<16} {status:<9} {graph.node_count} nodes, {len(graph.op_types)} op types ({graph.file})")
            for finding in graph.findings:
                lines.append(f"    {finding.severity} [{finding.check}]: {finding.message}")
        lines.append("  result: " + ("ready for 'skyvoice engines build'" if self.ok else "not ready (see errors above)"))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "bundle": self.bundle,
            "ok": self.ok,
            "tensorrt_ops_version": TENSORRT_OPS_VERSION,
            "findings": [vars(f) for f in self.findings],
            "graphs": [
                {
                    "name": g.name,
                    "file": g.file,
                    "ok": g.ok,
                    "node_count": g.node_count,
                    "op_types": list(g.op_types),
                    "findings": [vars(f) for f in g.findings],
                }
                for g in self.graphs
            ],
        }


def _iter_nodes(graph) -> Iterator:
    """Every node, descending into Loop/If/Scan bodies (the parser must import those too)."""
    import onnx

    for node in graph.node:
        yield node
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from _iter_nodes(attribute.g)
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for sub in attribute.graphs:
                    yield from _iter_nodes(sub)


def _dims(value_info) -> tuple[DimSpec, ...]:
    """ONNX input dims as ints (static) or DYN (symbolic or unknown)."""
    shape = value_info.type.tensor_type.shape
    return tuple(d.dim_value if d.HasField("dim_value") else DYN for d in shape.dim)


def _expected_for(graph_name: str, input_name: str) -> Optional[tuple[DimSpec, ...]]:
    table = EXPECTED_INPUTS.get(graph_name, {})
    if input_name in table:
        return table[input_name]
    for key, dims in table.items():
        if key.endswith("_") and input_name.startswith(key) and input_name[len(key):].isdigit():
            return dims
    return None


def _check_shapes(graph_name: str, model) -> list[Finding]:
    findings = []
    initializer_names = {init.name for init in model.graph.initializer}
    for value_info in model.graph.input:
        if value_info.name in initializer_names:
            continue
        expected = _expected_for(graph_name, value_info.name)
        if expected is None:
            if graph_name in EXPECTED_INPUTS:
                findings.append(Finding("warning", "shapes", f"input '{value_info.name}' is not in the graph contract of docs/architecture.md"))
            continue
        actual = _dims(value_info)
        if len(actual) != len(expected):
            findings.append(Finding(
                "error", "shapes",
                f"input '{value_info.name}' has rank {len(actual)} {list(actual)}, expected rank {len(expected)} {list(expected)}; re-export the graph",
            ))
            continue
        for axis, (want, got) in enumerate(zip(expected, actual)):
            if want == ANY:
                continue
            if want == DYN and got != DYN:
                findings.append(Finding(
                    "error", "shapes",
                    f"input '{value_info.name}' axis {axis} is fixed at {got} but must be dynamic (an optimization-profile range); re-export with dynamic_axes",
                ))
            elif want != DYN and got != want:
                findings.append(Finding(
                    "error", "shapes",
                    f"input '{value_info.name}' axis {axis} is {got}, expected static {want}; re-export the graph",
                ))
    if graph_name in EXPECTED_INPUTS:
        present = {vi.name for vi in model.graph.input}
        for key in EXPECTED_INPUTS[graph_name]:
            if key.endswith("_"):
                if not any(name.startswith(key) for name in present):
                    findings.append(Finding("error", "shapes", f"no '{key}<i>' inputs; the decode step needs one per layer"))
            elif key not in present:
                findings.append(Finding("error", "shapes", f"input '{key}' is missing from the graph"))
    return findings


def _check_zero_points(model, nodes) -> list[Finding]:
    from onnx import numpy_helper

    constants = {init.name: init for init in model.graph.initializer}
    for node in nodes:
        if node.op_type == "Constant" and node.output:
            for attribute in node.attribute:
                if attribute.name == "value":
                    constants[node.output[0]] = attribute.t
    findings = []
    for node in nodes:
        if node.op_type not in QDQ_OPS or len(node.input) < 3 or not node.input[2]:
            continue
        zero_point = constants.get(node.input[2])
        if zero_point is None:
            findings.append(Finding("error", "quantization", f"{node.op_type} '{node.name}' has a computed zero point; TensorRT needs a constant zero"))
            continue
        values = numpy_helper.to_array(zero_point)
        if np.any(values != 0):
            findings.append(Finding(
                "error", "quantization",
                f"{node.op_type} '{node.name}' has a nonzero zero point; TensorRT is symmetric only, requantize with ActivationSymmetric/WeightSymmetric",
            ))
        elif values.dtype not in (np.int8,):
            findings.append(Finding(
                "warning", "quantization",
                f"{node.op_type} '{node.name}' quantizes to {values.dtype}; TensorRT's INT8 path expects int8",
            ))
    return findings


def check_model(name: str, model, file: str = "") -> GraphReadiness:
    """All static checks on one loaded ONNX model (`onnx.ModelProto`)."""
    nodes = list(_iter_nodes(model.graph))
    op_types = sorted({n.op_type for n in nodes})
    findings: list[Finding] = []

    foreign = sorted({f"{n.domain}::{n.op_type}" for n in nodes if n.domain not in ("", "ai.onnx")})
    if foreign:
        findings.append(Finding("error", "operators", f"custom-domain operators need TensorRT plugins: {', '.join(foreign)}"))
    default_ops = {n.op_type for n in nodes if n.domain in ("", "ai.onnx")}
    unsupported = sorted(default_ops & UNSUPPORTED_OPS)
    unknown = sorted(default_ops - SUPPORTED_OPS - UNSUPPORTED_OPS)
    if unsupported:
        findings.append(Finding("error", "operators", f"operators TensorRT {TENSORRT_OPS_VERSION} does not import: {', '.join(unsupported)}"))
    if unknown:
        findings.append(Finding("error", "operators", f"operators missing from TensorRT {TENSORRT_OPS_VERSION}'s operator list: {', '.join(unknown)}"))

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or not MIN_OPSET <= opset <= MAX_OPSET:
        findings.append(Finding("error", "opset", f"default-domain opset {opset} is outside the parser's range {MIN_OPSET}..{MAX_OPSET}; export with opset 17"))

    control = sorted(default_ops & CONTROL_FLOW_OPS)
    if control:
        severity = "error" if name in DECODE_PATH_GRAPHS else "warning"
        findings.append(Finding(
            severity, "control_flow",
            f"{', '.join(control)} in {name}: the decode path must be straight-line (static shapes, CUDA-graph capture); unroll it at export",
        ))

    findings.extend(_check_zero_points(model, nodes))
    findings.extend(_check_shapes(name, model))
    return GraphReadiness(name=name, file=file, node_count=len(nodes), op_types=tuple(op_types), findings=tuple(findings))


def check_graph_file(name: str, path: Path, file: str = "") -> GraphReadiness:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf decode errors have no common base class
        return GraphReadiness(name, file or str(path), 0, (), (Finding("error", "load", f"cannot read {path}: {exc}"),))
    return check_model(name, model, file or str(path))


def _bundle_graphs(bundle_dir: Path) -> tuple[dict[str, str], list[Finding]]:
    """{graph name: relative file} from manifest.json, else from graphs/*.onnx."""
    manifest_path = bundle_dir / "manifest.json"
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            graphs = {name: entry["file"] for name, entry in manifest.get("graphs", {}).items()}
            return graphs, []
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return {}, [Finding("error", "load", f"{manifest_path} has no readable 'graphs' table ({exc}); rebuild the bundle")]
    graphs = {p.stem: str(p.relative_to(bundle_dir)) for p in sorted((bundle_dir / "graphs").glob("*.onnx"))}
    return graphs, []


def check_bundle(bundle_dir: str | Path) -> ReadinessReport:
    """Check every graph of a bundle directory; `skyvoice doctor --bundle` prints `report.format()`."""
    bundle_dir = Path(bundle_dir)
    graphs, findings = _bundle_graphs(bundle_dir)
    if not graphs and not findings:
        findings.append(Finding("error", "load", f"no graphs in {bundle_dir} (no manifest.json, no graphs/*.onnx); pass a bundle directory"))
    results = []
    for name, rel in sorted(graphs.items()):
        path = bundle_dir / rel
        if not path.is_file():
            results.append(GraphReadiness(name, rel, 0, (), (Finding("error", "load", f"graph file {path} is missing"),)))
            continue
        results.append(check_graph_file(name, path, rel))
    report = ReadinessReport(bundle=str(bundle_dir), graphs=tuple(results), findings=tuple(findings))
    _LOGGER.info("trt readiness bundle=%s ok=%s graphs=%d", bundle_dir, report.ok, len(results))
    return report
