"""Engine keys: write/read, match and every mismatch reason, without TensorRT."""

from __future__ import annotations

import dataclasses
import json

import pytest

from runtime.trt.engine_key import (
    EngineKey,
    EngineKeyError,
    PlatformInfo,
    check_engine,
    compare_keys,
    file_sha256,
    jetpack_for_l4t,
    key_path,
    platform_from_facts,
    read_key,
    write_key,
)

ORIN_JP62 = PlatformInfo("10.3.0.30", "12.6.68", "36.4.3", "6.1/6.2", "Jetson Orin", "8.7")
SHA = "ab" * 32


def _key(platform=ORIN_JP62, sha=SHA):
    return EngineKey(platform, "gpt_decode_step", "graphs/gpt_decode_step.onnx", sha, "fp16", {"k_cache_0": ((1, 2048, 512),) * 3})


def test_key_round_trips_beside_the_engine(tmp_path):
    engine = tmp_path / "gpt_decode_step.engine"
    engine.write_bytes(b"plan")
    path = write_key(engine, _key())
    assert path == key_path(engine) and path.name == "gpt_decode_step.engine.key.json"
    assert read_key(engine) == _key()
    data = json.loads(path.read_text())
    # the field names runtime/bundle/doctor.py reads
    assert data["tensorrt"] == "10.3.0.30" and data["l4t"] == "36.4.3" and data["onnx_file"] == "graphs/gpt_decode_step.onnx"
    assert data["profiles"]["k_cache_0"][0] == [1, 2048, 512]
    assert check_engine(engine, ORIN_JP62, SHA).ok


@pytest.mark.parametrize(
    "field, value",
    [("tensorrt", "10.3.0.26"), ("cuda", "12.2.140"), ("l4t", "36.3.0"), ("compute_capability", "7.2"), ("gpu_name", "Jetson Xavier")],
)
def test_each_platform_difference_is_a_named_reason(field, value):
    here = dataclasses.replace(ORIN_JP62, **{field: value})
    match = compare_keys(_key(), here, SHA)
    assert not match.ok
    assert any(reason.startswith(field) and value in reason for reason in match.reasons), match.reasons


def test_changed_onnx_and_several_differences_are_all_reported():
    here = dataclasses.replace(ORIN_JP62, tensorrt="10.16.2.10", l4t="39.2.0")
    match = compare_keys(_key(), here, "cd" * 32)
    assert len(match.reasons) == 3
    assert "ONNX graph changed" in str(match)


def test_missing_engine_missing_key_and_garbled_key(tmp_path):
    engine = tmp_path / "x.engine"
    assert "no engine at" in str(check_engine(engine, ORIN_JP62, SHA))
    engine.write_bytes(b"plan")
    assert "is missing" in str(check_engine(engine, ORIN_JP62, SHA))
    key_path(engine).write_text("{not json")
    assert "unreadable" in str(check_engine(engine, ORIN_JP62, SHA))
    key_path(engine).write_text(json.dumps({"format_version": 99}))
    with pytest.raises(EngineKeyError, match="format_version"):
        read_key(engine)
    key_path(engine).write_text(json.dumps({"format_version": 1, "graph": "g"}))
    match = check_engine(engine, ORIN_JP62, SHA)
    assert not match.ok and "rebuild" in str(match)


def test_platform_from_box_facts_and_jetpack_table():
    from runtime.bundle.box_facts import BoxFacts

    facts = BoxFacts(l4t="36.4.3", tensorrt="10.3.0.30", cuda="12.6.68", gpu_name="Jetson Orin", compute_capability="8.7")
    assert platform_from_facts(facts) == ORIN_JP62
    with pytest.raises(EngineKeyError, match="tensorrt Python module"):
        platform_from_facts(BoxFacts(compute_capability="8.7"))
    with pytest.raises(EngineKeyError, match="no NVIDIA GPU"):
        platform_from_facts(BoxFacts(tensorrt="10.3.0.30"))
    assert jetpack_for_l4t("36.4.3") == "6.1/6.2"
    assert jetpack_for_l4t("36.4.4") == "6.2.1"
    assert jetpack_for_l4t("35.4.1") == "5.1.2"
    assert jetpack_for_l4t("") == ""


def test_file_sha256(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert file_sha256(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_graph_sha256_covers_shared_external_weights(tmp_path):
    """An engine built from a graph whose weights live in an external file goes stale when only those weights change."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from runtime.trt.engine_key import graph_sha256

    weight = numpy_helper.from_array(np.ones((64, 64), dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])], [weight],
    )
    path = tmp_path / "g.onnx"
    onnx.save(helper.make_model(graph), str(path), save_as_external_data=True, location="w.bin", size_threshold=0)
    before = graph_sha256(path)
    assert before != file_sha256(path)
    data = bytearray((tmp_path / "w.bin").read_bytes())
    data[0] ^= 1
    (tmp_path / "w.bin").write_bytes(bytes(data))
    assert graph_sha256(path) != before
