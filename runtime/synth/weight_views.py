"""Weight views: a graph's `MatMulNBits` weights laid out at load from int8 bytes another graph already stores.

In the `int8_column` GPT form both GPT graphs use the same per-column int8 weights: the prefill multiplies the
`[K, N]` int8 matrices as they are stored; the decode step multiplies them through ONNX Runtime's `MatMulNBits`,
which wants them transposed (`[N, K]`, in blocks of `block` along K) and as uint8 with 128 added (its symmetric zero
point). That copy is exact, so the bundle stores the bytes once (`graphs/gpt_weights.bin`) and the runtime makes the
step's copy when it loads the graph. The graph declares each such weight as external data lying past the end of the
weights file, so a loader that does not know about views fails loudly instead of reading the wrong bytes. The views
are listed in a sidecar next to the graph, `<graph stem>.weight_views.json`:

    {"format": 1, "views": {"<initializer>": {"location": "gpt_weights.bin", "offset": 8192, "k": 512, "n": 1536,
                                               "block": 256}}}

`location` is relative to the graph's folder; `offset` is where the `[K, N]` int8 matrix starts in it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Final, Iterator

import numpy as np

from runtime.errors import SynthesisError

VIEWS_SUFFIX: Final = ".weight_views.json"
VIEWS_FORMAT: Final = 1


def views_path(graph_path: str | os.PathLike) -> Path:
    """Where the sidecar of the graph at `graph_path` lies (it may not exist)."""
    graph_path = Path(graph_path)
    return graph_path.with_name(graph_path.stem + VIEWS_SUFFIX)


def column_to_view(weight: np.ndarray, block: int) -> np.ndarray:
    """`MatMulNBits` (8 bits, symmetric) weight bytes `[N, ceil(K/block), block]` uint8 for an int8 `[K, N]` matrix:
    transposed, +128, rows padded with the zero point (128) to whole blocks."""
    if weight.dtype != np.int8 or weight.ndim != 2:
        raise ValueError(f"a weight view needs an int8 [K, N] matrix, not {weight.dtype} {list(weight.shape)}")
    k, n = weight.shape
    blocks = -(-k // block)
    view = np.full((n, blocks * block), 128, dtype=np.uint8)
    view[:, :k] = weight.T.view(np.uint8) ^ np.uint8(0x80)
    return view.reshape(n, blocks, block)


def load_weight_views(graph_path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The views the graph at `graph_path` needs, by initializer name ({} when it has no sidecar)."""
    return dict(iter_weight_views(graph_path))


def iter_weight_views(graph_path: str | os.PathLike) -> Iterator[tuple[str, np.ndarray]]:
    """(initializer name, view) for each view the graph at `graph_path` needs, made one at a time; the sidecar is
    checked whole before the first is made."""
    sidecar = views_path(graph_path)
    if not sidecar.is_file():
        return
    try:
        spec = json.loads(sidecar.read_text(encoding="utf-8"))
        if spec.get("format") != VIEWS_FORMAT:
            raise ValueError(f"format {spec.get('format')!r} is not {VIEWS_FORMAT}")
        sources = []
        for name, entry in spec["views"].items():
            source = sidecar.parent / entry["location"]
            k, n, offset, block = int(entry["k"]), int(entry["n"]), int(entry["offset"]), int(entry["block"])
            if source.parent.resolve() != sidecar.parent.resolve():
                raise ValueError(f"view {name} points outside the graph's folder ({entry['location']})")
            if offset < 0 or offset + k * n > source.stat().st_size:
                raise ValueError(f"view {name} needs bytes {offset}..{offset + k * n} of {source.name}, which is shorter")
            sources.append((name, source, k, n, offset, block))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _unreadable(sidecar, exc) from exc
    for name, source, k, n, offset, block in sources:
        try:
            weight = np.fromfile(source, dtype=np.int8, count=k * n, offset=offset).reshape(k, n)
        except (OSError, ValueError) as exc:
            raise _unreadable(sidecar, exc) from exc
        yield name, column_to_view(weight, block)


def _unreadable(sidecar: Path, exc: Exception) -> SynthesisError:
    return SynthesisError(f"weight views {sidecar} cannot be read: {exc}; rebuild the bundle with 'skyvoice build'")
