"""Compare an exported graph's outputs with the PyTorch reference; name every failing output with its max diff."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from export.errors import ExportError
from export.graphs.spec import GraphSpec

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutputDiff:
    name: str
    max_abs: float
    max_rel: float
    ok: bool


def compare_outputs(
    spec: GraphSpec, expected: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray]
) -> list[OutputDiff]:
    """Per output: max |a-e| and max |a-e|/(|e|+1e-6 * max|e|); ok when within spec.atol + spec.rtol*|e|."""
    diffs = []
    for name in spec.outputs:
        exp = np.asarray(expected[name], dtype=np.float64)
        act = np.asarray(actual[name], dtype=np.float64)
        if exp.shape != act.shape:
            raise ExportError(f"graph {spec.name}: output '{name}' has shape {act.shape}, the reference {exp.shape}")
        err = np.abs(act - exp)
        max_abs = float(err.max()) if err.size else 0.0
        scale = np.abs(exp) + 1e-6 * (float(np.abs(exp).max()) if exp.size else 1.0) + 1e-12
        max_rel = float((err / scale).max()) if err.size else 0.0
        ok = bool(np.all(err <= spec.atol + spec.rtol * np.abs(exp)))
        diffs.append(OutputDiff(name, max_abs, max_rel, ok))
    return diffs


def check_parity(
    spec: GraphSpec, expected: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray]
) -> dict[str, dict[str, float]]:
    """Raise one ExportError listing every output out of tolerance; return {output: {max_abs, max_rel}}."""
    diffs = compare_outputs(spec, expected, actual)
    for diff in diffs:
        _LOGGER.info(
            "parity graph=%s output=%s max_abs=%.3g max_rel=%.3g %s",
            spec.name, diff.name, diff.max_abs, diff.max_rel, "ok" if diff.ok else "FAIL",
        )
    bad = [d for d in diffs if not d.ok]
    if bad:
        listing = ", ".join(f"'{d.name}' max_abs={d.max_abs:.3g} max_rel={d.max_rel:.3g}" for d in bad)
        raise ExportError(
            f"graph {spec.name} disagrees with the PyTorch reference beyond atol={spec.atol} rtol={spec.rtol}: {listing}"
        )
    return {d.name: {"max_abs": d.max_abs, "max_rel": d.max_rel} for d in diffs}
