"""Store the GPT's weights once for both GPT graphs: one external-data file that the prefill and decode-step graphs
point into.

Both graphs are traced from the same module, so their large initializers hold the same bytes (the exporter may name
them differently, and INT8 per-channel weight quantization is deterministic). Each distinct tensor is written once
to `graphs/gpt_weights.bin` (page-aligned, so a runtime may memory-map it), and every initializer with those bytes in
either graph refers to it by offset. This halves the GPT's share of the bundle; ONNX Runtime and TensorRT's ONNX
parser both read external data next to the graph file.

Weight views (the `int8_column` form, `export/weight_views.py`): a decode-step weight that is an exact re-layout of
a prefill weight is not stored; the graph points it past the end of the file and `<graph>.weight_views.json` says
where its source lies, for the runtime to lay it out at load.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Final, Sequence

from export.weight_views import detach_views, view_records
from runtime.synth.weight_views import views_path

_LOGGER = logging.getLogger(__name__)

SHARED_WEIGHTS_FILE: Final = "gpt_weights.bin"
MIN_SHARED_BYTES: Final = 4096  # smaller tensors stay inside the graph
ALIGN_BYTES: Final = 4096


def _store(tensor, out, offsets: dict[str, tuple[int, int]], weights_name: str) -> int:
    """Write `tensor`'s bytes to `out` unless the same bytes are there already; point it at them. Returns 1."""
    import onnx
    from onnx.external_data_helper import set_external_data

    data = tensor.raw_data
    digest = hashlib.sha256(data).hexdigest()
    if digest not in offsets:
        position = out.tell()
        padding = (-position) % ALIGN_BYTES
        out.write(b"\0" * padding)
        offsets[digest] = (position + padding, len(data))
        out.write(data)
    offset, length = offsets[digest]
    set_external_data(tensor, location=weights_name, offset=offset, length=length)
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    return 1


def _write_sidecar(path: Path, sidecar: dict) -> None:
    if not sidecar:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(sidecar, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def share_weights(graph_paths: Sequence[str | os.PathLike], weights_name: str = SHARED_WEIGHTS_FILE) -> dict:
    """Rewrite the graphs (all in one folder) to keep their large initializers in one deduplicated file.

    Returns {"file": name, "bytes": size, "tensors": distinct tensors, "references": initializers redirected}.
    """
    import onnx

    paths = [Path(p) for p in graph_paths]
    folder = paths[0].parent
    if any(p.parent != folder for p in paths):
        raise ValueError("graphs sharing one weights file must sit in one folder")
    models = [onnx.load(str(p)) for p in paths]
    weights_path = folder / weights_name
    offsets: dict[str, tuple[int, int]] = {}
    references = 0
    with open(weights_path, "wb") as out:
        for model in models:
            views = view_records(model)
            for tensor in model.graph.initializer:
                if not tensor.HasField("raw_data") or len(tensor.raw_data) < MIN_SHARED_BYTES or tensor.name in views:
                    continue
                references += _store(tensor, out, offsets, weights_name)
        for model in models:  # a view whose source is not stored here keeps its own bytes (stored like any tensor)
            views = view_records(model)
            for tensor in model.graph.initializer:
                if tensor.name in views and views[tensor.name]["source_sha256"] not in offsets:
                    references += _store(tensor, out, offsets, weights_name)
        detached = [detach_views(model, offsets, weights_name, out.tell()) for model in models]
        out.flush()
        os.fsync(out.fileno())
    for model, path, sidecar in zip(models, paths, detached):
        tmp = path.with_name(path.name + ".tmp")
        onnx.save(model, str(tmp))
        os.replace(tmp, path)
        _write_sidecar(views_path(path), sidecar)
    size = weights_path.stat().st_size
    _LOGGER.info("weights shared file=%s bytes=%d tensors=%d references=%d", weights_path.name, size, len(offsets), references)
    return {"file": weights_name, "bytes": size, "tensors": len(offsets), "references": references}
