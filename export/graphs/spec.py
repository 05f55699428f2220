"""Declarative description of one exported graph: names, axes, opset and validation tolerance."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Mapping

DEFAULT_OPSET: Final = 17


@dataclass(frozen=True)
class GraphSpec:
    """What a graph is called, what goes in and out, which axes are dynamic, and how close to torch it must be."""

    name: str  # e.g. "gpt_prefill"; the manifest key
    file: str  # e.g. "graphs/gpt_prefill.onnx", relative to the bundle
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    dynamic_axes: Mapping[str, Mapping[int, str]] = field(default_factory=dict)
    opset: int = DEFAULT_OPSET
    atol: float = 1e-4
    rtol: float = 1e-3
