"""Build side of weight views (`runtime/synth/weight_views.py` says what they are and how the box lays them out).

`matmul_integer_to_views` turns a one-row graph's dynamic per-column integer MatMuls (what `quantize_dynamic`
writes: DynamicQuantizeLinear → MatMulInteger → Cast → Mul by the two scales) into `MatMulNBits` nodes whose weight
holds the view's real bytes, so the candidate graph runs in plain ONNX Runtime while the build gates and times it.
The graph's metadata names each view's source by the SHA-256 of its int8 `[K, N]` bytes; `export/shared_weights.py`
then stores only the source and points the view past the end of the weights file (`detach_views`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Final

import numpy as np

from runtime.synth.weight_views import VIEWS_FORMAT, column_to_view

VIEWS_METADATA_KEY: Final = "skyvoice.weight_views"


def _producers(graph) -> dict:
    return {out: node for node in graph.node for out in node.output}


def _users(graph) -> dict:
    users: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    return users


def _remove_dead_nodes(graph) -> None:
    outputs = {o.name for o in graph.output}
    while True:
        used = {name for node in graph.node for name in node.input} | outputs
        dead = [node for node in graph.node if not any(out in used for out in node.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    used = {name for node in graph.node for name in node.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)


def matmul_integer_to_views(model, block: int) -> int:
    """Rewrite `model` in place (see the module doc); return how many MatMuls became views."""
    from onnx import helper, numpy_helper

    graph = model.graph
    constants = {init.name: init for init in graph.initializer}
    producers, users = _producers(graph), _users(graph)
    records = {}
    for node in list(graph.node):
        if node.op_type != "MatMulInteger" or node.input[1] not in constants:
            continue
        weight = numpy_helper.to_array(constants[node.input[1]])
        quantize = producers.get(node.input[0])
        cast = users.get(node.output[0], [None])[0]
        scale = users.get(cast.output[0], [None])[0] if cast is not None and cast.op_type == "Cast" else None
        if (weight.dtype != np.int8 or weight.ndim != 2 or quantize is None or quantize.op_type != "DynamicQuantizeLinear"
                or len(users[node.output[0]]) != 1 or scale is None or scale.op_type != "Mul" or len(users[cast.output[0]]) != 1):
            continue
        scales_product = producers.get(scale.input[1] if scale.input[0] == cast.output[0] else scale.input[0])
        column_scale = next((name for name in (scales_product.input if scales_product is not None else ()) if name in constants), None)
        zero_point = numpy_helper.to_array(constants[node.input[3]]) if len(node.input) > 3 and node.input[3] in constants else np.zeros(1)
        if column_scale is None or np.any(zero_point != 0):
            continue
        k, n = weight.shape
        block_size = block
        while block_size > 16 and block_size // 2 >= k:  # a small K takes a smaller block, not padding
            block_size //= 2
        scales = np.broadcast_to(numpy_helper.to_array(constants[column_scale]).astype(np.float32).reshape(-1), (n,))
        view = column_to_view(weight, block_size)
        view_name = node.input[1] + ".nbits_view"
        scales_name = node.input[1] + ".nbits_scales"
        graph.initializer.append(numpy_helper.from_array(view, view_name))
        graph.initializer.append(numpy_helper.from_array(np.repeat(scales[:, None], view.shape[1], axis=1).astype(np.float32), scales_name))
        replacement = helper.make_node(
            "MatMulNBits", [quantize.input[0], view_name, scales_name], [scale.output[0]], name=(node.name or view_name) + "_view",
            domain="com.microsoft", K=k, N=n, bits=8, block_size=block_size, accuracy_level=4,
        )
        graph.node.insert(list(graph.node).index(scale), replacement)
        graph.node.remove(scale)
        records[view_name] = {"source_sha256": hashlib.sha256(weight.tobytes()).hexdigest(), "k": k, "n": n, "block": block_size}
    _remove_dead_nodes(graph)
    if records:
        if not any(o.domain == "com.microsoft" for o in model.opset_import):
            model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
        _set_metadata(model, records)
    return len(records)


def view_records(model) -> dict:
    """The views a graph declares in its metadata ({} for none)."""
    for prop in model.metadata_props:
        if prop.key == VIEWS_METADATA_KEY:
            return json.loads(prop.value)
    return {}


def _set_metadata(model, records: dict) -> None:
    for prop in [p for p in model.metadata_props if p.key == VIEWS_METADATA_KEY]:
        model.metadata_props.remove(prop)
    entry = model.metadata_props.add()
    entry.key, entry.value = VIEWS_METADATA_KEY, json.dumps(records, sort_keys=True)


def detach_views(model, sources: dict[str, tuple[int, int]], weights_name: str, weights_end: int) -> dict:
    """Point each view of `model` whose source is in `sources` (sha256 → (offset, length) in `weights_name`) past the
    end of that file, and return the sidecar's content ({} when no view was detached). A view whose source is not
    there keeps its own bytes and stops being a view."""
    from onnx import TensorProto
    from onnx.external_data_helper import set_external_data

    records = view_records(model)
    initializers = {init.name: init for init in model.graph.initializer}
    sidecar = {}
    for name, record in records.items():
        source = sources.get(record["source_sha256"])
        tensor = initializers.get(name)
        if source is None or tensor is None or source[1] != record["k"] * record["n"]:
            continue
        blocks = -(-record["k"] // record["block"])
        set_external_data(tensor, location=weights_name, offset=weights_end, length=record["n"] * blocks * record["block"])
        tensor.ClearField("raw_data")
        tensor.data_location = TensorProto.EXTERNAL
        sidecar[name] = {"location": weights_name, "offset": source[0], "k": record["k"], "n": record["n"], "block": record["block"]}
    for prop in [p for p in model.metadata_props if p.key == VIEWS_METADATA_KEY]:
        model.metadata_props.remove(prop)
    if not sidecar:
        return {}
    _set_metadata(model, {name: records[name] for name in sidecar})
    return {"format": VIEWS_FORMAT, "views": sidecar}
