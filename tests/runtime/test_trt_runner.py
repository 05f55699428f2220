"""Backend selection (runs everywhere) and the TensorRT runner (runs where tensorrt, pycuda and a GPU are present).

Selection tests use a real ONNX Runtime session for the fallback; the only stand-in is the TensorRT runner factory
on machines without a GPU (the true edge), which lets the key-match path be tested without TensorRT.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from runtime.synth.runner import OrtRunner
from runtime.synth.trt_runner import engine_path_for, select_runner
from runtime.trt.engine_key import EngineKey, PlatformInfo, file_sha256, write_key

ORIN = PlatformInfo("10.3.0.30", "12.6.68", "36.4.3", "6.1/6.2", "Jetson Orin", "8.7")


GIN = 8


def _tiny_graph(path):
    """A ref_encoder stand-in with the contract's I/O: spectrogram [1,1025,Tr] -> mean over time -> 1x1 conv -> ge [1,GIN,1]."""
    weight = numpy_helper.from_array(np.random.default_rng(1).standard_normal((GIN, 1025, 1)).astype(np.float32) / 32.0, "w")
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["spectrogram"], ["pooled"], axes=[2], keepdims=1),
            helper.make_node("Conv", ["pooled", "w"], ["ge"]),
        ],
        "ref_encoder",
        [helper.make_tensor_value_info("spectrogram", TensorProto.FLOAT, [1, 1025, "frames"])],
        [helper.make_tensor_value_info("ge", TensorProto.FLOAT, [1, GIN, 1])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


@pytest.fixture()
def bundle(tmp_path):
    (tmp_path / "graphs").mkdir()
    (tmp_path / "engines").mkdir()
    graph = _tiny_graph(tmp_path / "graphs" / "ref_encoder.onnx")
    return tmp_path, graph


def _fake_engine(bundle_dir, graph, platform=ORIN, sha=None):
    engine = engine_path_for(bundle_dir / "engines", graph.stem)
    engine.write_bytes(b"not a real plan")
    write_key(engine, EngineKey(platform, graph.stem, f"graphs/{graph.name}", sha or file_sha256(graph), "fp16", {}))
    return engine


class _DeviceRunnerStandIn:
    """Stands in for a TensorRT runner on machines without a GPU."""

    input_names, output_names, backend = ("spectrogram",), ("ge",), "tensorrt:stand-in"

    def __init__(self, engine_path):
        self.engine_path = engine_path


def test_no_engine_falls_back_to_onnxruntime(bundle, caplog):
    bundle_dir, graph = bundle
    with caplog.at_level(logging.INFO, logger="runtime.synth.trt_runner"):
        choice = select_runner(graph, bundle_dir / "engines", platform=ORIN)
    assert isinstance(choice.runner, OrtRunner) and choice.backend.startswith("onnxruntime:")
    assert "no TensorRT engine" in choice.reason
    assert any("backend=onnxruntime" in r.getMessage() for r in caplog.records)
    out = choice.runner.run({"spectrogram": np.ones((1, 1025, 20), np.float32)})["ge"]
    assert out.shape == (1, GIN, 1)


def test_stale_key_is_reported_once_and_falls_back(bundle, caplog):
    bundle_dir, graph = bundle
    _fake_engine(bundle_dir, graph, platform=dataclasses.replace(ORIN, tensorrt="10.3.0.26"))
    with caplog.at_level(logging.INFO, logger="runtime.synth.trt_runner"):
        choice = select_runner(graph, bundle_dir / "engines", platform=ORIN, trt_runner_factory=_DeviceRunnerStandIn)
    assert isinstance(choice.runner, OrtRunner)
    assert "tensorrt differs" in choice.reason and "skyvoice engines build" in choice.reason
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "10.3.0.26" in warnings[0].getMessage()


def test_changed_onnx_makes_the_engine_stale(bundle):
    bundle_dir, graph = bundle
    _fake_engine(bundle_dir, graph, sha="0" * 64)
    choice = select_runner(graph, bundle_dir / "engines", platform=ORIN, trt_runner_factory=_DeviceRunnerStandIn)
    assert isinstance(choice.runner, OrtRunner) and "ONNX graph changed" in choice.reason


def test_matching_key_selects_tensorrt(bundle):
    bundle_dir, graph = bundle
    engine = _fake_engine(bundle_dir, graph)
    choice = select_runner(graph, bundle_dir / "engines", platform=ORIN, trt_runner_factory=_DeviceRunnerStandIn)
    assert choice.backend == "tensorrt:stand-in" and choice.reason == ""
    assert choice.runner.engine_path == engine


def test_unloadable_engine_falls_back(bundle):
    bundle_dir, graph = bundle
    _fake_engine(bundle_dir, graph)

    def broken(path):
        raise RuntimeError("deserialize_cuda_engine returned None")

    choice = select_runner(graph, bundle_dir / "engines", platform=ORIN, trt_runner_factory=broken)
    assert isinstance(choice.runner, OrtRunner) and "failed to load" in choice.reason


def test_box_without_tensorrt_falls_back(bundle):
    pytest.importorskip("onnxruntime")
    try:
        import tensorrt  # noqa: F401
        import pycuda.driver  # noqa: F401

        pytest.skip("tensorrt and pycuda import here; the no-TensorRT path is not reachable")
    except ImportError:
        pass
    bundle_dir, graph = bundle
    _fake_engine(bundle_dir, graph)
    choice = select_runner(graph, bundle_dir / "engines")  # probes the platform for real
    assert isinstance(choice.runner, OrtRunner) and "TensorRT is not usable here" in choice.reason


# --- on a machine with TensorRT, pycuda and a GPU ------------------------------------------------------------

def _gpu_stack():
    try:
        import tensorrt  # noqa: F401
        import pycuda.driver as cuda

        cuda.init()
        if cuda.Device.count() < 1:
            return "no CUDA device"
    except ImportError as exc:
        return f"tensorrt/pycuda do not import here ({exc})"
    except Exception as exc:  # pycuda raises its own error type when no driver is loaded
        return f"CUDA is not usable here ({exc})"
    return ""


GPU_REASON = _gpu_stack()
needs_gpu = pytest.mark.skipif(bool(GPU_REASON), reason=GPU_REASON or "gpu present")


@needs_gpu
def test_engine_build_and_run_match_onnxruntime(bundle):
    from runtime.trt.build import ShapeLimits, build_engine
    from runtime.trt.engine_key import probe_platform

    bundle_dir, graph = bundle
    platform = probe_platform()
    engine = engine_path_for(bundle_dir / "engines", "ref_encoder")
    key = build_engine(graph, engine, "ref_encoder", "fp32", platform, limits=ShapeLimits(spectrogram_frames=(16, 64, 256)))
    assert key.profiles["spectrogram"] == ((1, 1025, 16), (1, 1025, 64), (1, 1025, 256))
    choice = select_runner(graph, bundle_dir / "engines", platform=platform)
    assert choice.backend.startswith("tensorrt:"), choice.reason
    for frames in (16, 100):
        spectrogram = np.abs(np.random.default_rng(frames).standard_normal((1, 1025, frames))).astype(np.float32)
        got = choice.runner.run({"spectrogram": spectrogram})["ge"]
        want = OrtRunner(graph, providers=["CPUExecutionProvider"]).run({"spectrogram": spectrogram})["ge"]
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)


# --- the decode step: static capacity with kv_len masking (the TensorRT form) equals the ORT prefix form ---------

LAYERS, HEADS, WIDTH, VOCAB, CAPACITY = 2, 2, 8, 16, 32
HEAD_DIM = WIDTH // HEADS


def _head_major(rows):
    """[1,C,D] token-major rows → [1,H,C,D/H], the decode step's cache layout."""
    return np.ascontiguousarray(rows.reshape(1, rows.shape[1], HEADS, HEAD_DIM).transpose(0, 2, 1, 3))


def _decode_step_graph(path):
    """Contract I/O of gpt_decode_step (head-major caches); rows >= kv_len of each cache are masked out, as in the
    real graph, and every head's rows reach the logits in the row order k_new/v_new use."""
    rng = np.random.default_rng(5)
    inits = [
        numpy_helper.from_array(rng.standard_normal((VOCAB, WIDTH)).astype(np.float32), "emb"),
        numpy_helper.from_array((rng.standard_normal((WIDTH, VOCAB)) / 4).astype(np.float32), "w_out"),
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
        numpy_helper.from_array(np.array(1, np.int64), "one"),
        numpy_helper.from_array(np.array([1], np.int64), "idx1"),
        numpy_helper.from_array(np.array([2], np.int64), "idx2"),
        numpy_helper.from_array(np.array([1, WIDTH], np.int64), "row_shape"),
        numpy_helper.from_array(np.array([1, 1, 1, WIDTH], np.int64), "kv_shape"),
        numpy_helper.from_array(np.array([1, 1, -1, 1], np.int64), "mask_shape"),
        numpy_helper.from_array((np.arange(WIDTH, dtype=np.float32) + 1).reshape(1, WIDTH) / WIDTH, "position_weights"),
        numpy_helper.from_array(np.array(0.01, np.float32), "pos_scale"),
    ]
    nodes = [
        helper.make_node("Shape", ["k_cache_0"], ["cache_shape"]),
        helper.make_node("Gather", ["cache_shape", "idx2"], ["cache_len_1"], axis=0),
        helper.make_node("Squeeze", ["cache_len_1"], ["cache_len"]),
        helper.make_node("Range", ["zero", "cache_len", "one"], ["rows"]),
        helper.make_node("Less", ["rows", "kv_len"], ["valid"]),
        helper.make_node("Cast", ["valid"], ["valid_f"], to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["valid_f", "mask_shape"], ["mask"]),
        helper.make_node("Gather", ["emb", "token"], ["tok_emb"], axis=0),
        helper.make_node("Reshape", ["tok_emb", "row_shape"], ["h0"]),
        helper.make_node("Cast", ["audio_position"], ["pos_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["pos_f", "pos_scale"], ["pos_term"]),
        helper.make_node("Add", ["h0", "pos_term"], ["h_pos"]),
    ]
    acc = "h_pos"
    for i in range(LAYERS):
        for kind in ("k", "v"):
            nodes += [
                helper.make_node("Mul", [f"{kind}_cache_{i}", "mask"], [f"{kind}{i}_masked"]),
                helper.make_node("ReduceSum", [f"{kind}{i}_masked", "idx2"], [f"{kind}{i}_heads"], keepdims=0),  # [1,H,hd]
                helper.make_node("Reshape", [f"{kind}{i}_heads", "row_shape"], [f"{kind}{i}_sum"]),  # the row order
                helper.make_node("Mul", [f"{kind}{i}_sum", "position_weights"], [f"{kind}{i}_weighted"]),
                helper.make_node("Mul", [f"{kind}{i}_weighted", "pos_scale"], [f"{kind}{i}_small"]),
                helper.make_node("Add", [acc, f"{kind}{i}_small"], [f"acc_{kind}{i}"]),
            ]
            acc = f"acc_{kind}{i}"
    nodes.append(helper.make_node("MatMul", [acc, "w_out"], ["logits"]))
    rows_k, rows_v = [], []
    for i in range(LAYERS):
        inits.append(numpy_helper.from_array(np.array(float(i + 1), np.float32), f"layer_scale_{i}"))
        nodes += [
            helper.make_node("Mul", [acc, f"layer_scale_{i}"], [f"k_row_{i}"]),
            helper.make_node("Sub", [acc, f"layer_scale_{i}"], [f"v_row_{i}"]),
            helper.make_node("Reshape", [f"k_row_{i}", "kv_shape"], [f"k_row4_{i}"]),
            helper.make_node("Reshape", [f"v_row_{i}", "kv_shape"], [f"v_row4_{i}"]),
        ]
        rows_k.append(f"k_row4_{i}")
        rows_v.append(f"v_row4_{i}")
    nodes += [helper.make_node("Concat", rows_k, ["k_new"], axis=0), helper.make_node("Concat", rows_v, ["v_new"], axis=0)]
    inputs = [
        helper.make_tensor_value_info("token", TensorProto.INT64, [1, 1]),
        helper.make_tensor_value_info("audio_position", TensorProto.INT64, [1]),
        helper.make_tensor_value_info("kv_len", TensorProto.INT64, [1]),
    ] + [
        helper.make_tensor_value_info(f"{kind}_cache_{i}", TensorProto.FLOAT, [1, HEADS, "cache_len", HEAD_DIM])
        for i in range(LAYERS) for kind in ("k", "v")
    ]
    outputs = [
        helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, VOCAB]),
        helper.make_tensor_value_info("k_new", TensorProto.FLOAT, [LAYERS, 1, 1, WIDTH]),
        helper.make_tensor_value_info("v_new", TensorProto.FLOAT, [LAYERS, 1, 1, WIDTH]),
    ]
    model = helper.make_model(helper.make_graph(nodes, "gpt_decode_step", inputs, outputs, inits), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _reference_tokens(runner, prefill_rows, steps, static):
    """Greedy loop on host caches: ORT prefix form (static=False) or full-capacity form (static=True)."""
    rng = np.random.default_rng(9)
    k = [np.full((1, CAPACITY, WIDTH), 100.0, np.float32) for _ in range(LAYERS)]  # stale rows: must be masked
    v = [np.full((1, CAPACITY, WIDTH), 50.0, np.float32) for _ in range(LAYERS)]
    k_prefill = rng.standard_normal((LAYERS, 1, prefill_rows, WIDTH)).astype(np.float32)
    v_prefill = rng.standard_normal((LAYERS, 1, prefill_rows, WIDTH)).astype(np.float32)
    for i in range(LAYERS):
        k[i][0, :prefill_rows], v[i][0, :prefill_rows] = k_prefill[i, 0], v_prefill[i, 0]
    kv_len, token, tokens, all_logits = prefill_rows, 3, [], []
    for step in range(steps):
        rows = CAPACITY if static else kv_len
        feed = {"token": np.array([[token]], np.int64), "audio_position": np.array([step], np.int64), "kv_len": np.array([kv_len], np.int64)}
        for i in range(LAYERS):
            feed[f"k_cache_{i}"], feed[f"v_cache_{i}"] = _head_major(k[i][:, :rows]), _head_major(v[i][:, :rows])
        out = runner.run(feed)
        for i in range(LAYERS):
            k[i][0, kv_len], v[i][0, kv_len] = out["k_new"][i, 0, 0], out["v_new"][i, 0, 0]
        token = int(np.argmax(out["logits"]))
        tokens.append(token)
        all_logits.append(out["logits"])
        kv_len += 1
    return tokens, np.concatenate(all_logits), (k_prefill, v_prefill)


def _greedy_on(step, k_prefill, v_prefill, steps):
    """The same greedy loop as `_reference_tokens`, on a KvStep that owns its cache: (tokens, logits [steps, V])."""
    kv_len = step.load_prefill(k_prefill, v_prefill)
    token, tokens, logits = 3, [], []
    for position in range(steps):
        out = step.step(token, position, kv_len)
        token = int(np.argmax(out))
        tokens.append(token)
        logits.append(out.reshape(1, -1))
        kv_len += 1
    return tokens, np.concatenate(logits)


def test_masked_full_capacity_step_equals_prefix_step_on_onnxruntime(tmp_path):
    graph = _decode_step_graph(tmp_path / "gpt_decode_step.onnx")
    runner = OrtRunner(graph, providers=["CPUExecutionProvider"])
    prefix_tokens, prefix_logits, _ = _reference_tokens(runner, 5, 12, static=False)
    static_tokens, static_logits, _ = _reference_tokens(runner, 5, 12, static=True)
    assert prefix_tokens == static_tokens
    np.testing.assert_allclose(prefix_logits, static_logits, rtol=1e-5, atol=1e-5)
    from runtime.trt.readiness import check_graph_file

    assert check_graph_file("gpt_decode_step", graph).ok


@needs_gpu
def test_trt_decode_step_keeps_the_cache_on_the_device_and_matches_onnxruntime(tmp_path):
    from runtime.synth.trt_runner import KvLayout, TrtDecodeStep, TrtRunner
    from runtime.trt.build import ShapeLimits, build_engine
    from runtime.trt.engine_key import probe_platform

    graph = _decode_step_graph(tmp_path / "gpt_decode_step.onnx")
    engine = tmp_path / "gpt_decode_step.engine"
    build_engine(graph, engine, "gpt_decode_step", "fp32", probe_platform(), limits=ShapeLimits(kv_capacity=CAPACITY))
    want_tokens, want_logits, (k_prefill, v_prefill) = _reference_tokens(OrtRunner(graph, providers=["CPUExecutionProvider"]), 5, 12, static=False)

    step = TrtDecodeStep(TrtRunner(engine), KvLayout(LAYERS, CAPACITY, WIDTH, HEADS))
    tokens, logits = _greedy_on(step, k_prefill, v_prefill, 12)  # steps 3.. replay the captured CUDA graph
    assert tokens == want_tokens
    np.testing.assert_allclose(logits, want_logits, rtol=1e-3, atol=1e-3)


class _FakeDeviceMemory:
    """The CUDA driver calls TrtDecodeStep makes, over host bytes (the true edge: no GPU here). Pointers are integers
    into one flat arena, so pointer arithmetic, pitches and out-of-bounds writes behave as on a device."""

    def __init__(self, nbytes=1 << 20):
        self.arena = np.zeros(nbytes, np.uint8)
        self.next = 4096

    def mem_alloc(self, nbytes):
        base, self.next = self.next, self.next + ((nbytes + 255) // 256) * 256
        assert self.next <= self.arena.size, "fake device out of memory"

        class Allocation(int):
            def free(self):
                pass

        return Allocation(base)

    def view(self, ptr, nbytes):
        return self.arena[int(ptr):int(ptr) + nbytes]

    def memset_d8(self, ptr, value, nbytes):
        self.view(ptr, nbytes)[:] = value

    def memcpy_htod_async(self, ptr, host, stream=None):
        raw = np.ascontiguousarray(host).view(np.uint8).reshape(-1)
        self.view(ptr, raw.size)[:] = raw

    def memcpy_dtoh_async(self, host, ptr, stream=None):
        host.view(np.uint8).reshape(-1)[:] = self.view(ptr, host.nbytes)

    def pagelocked_empty(self, shape, dtype):
        return np.empty(shape, dtype)

    def Memcpy2D(self):
        memory = self

        class Copy2D:
            def set_src_host(self, array):
                self.src = ("host", np.ascontiguousarray(array).view(np.uint8).reshape(-1))

            def set_src_device(self, ptr):
                self.src = ("device", int(ptr))

            def set_dst_device(self, ptr):
                self.dst = int(ptr)

            def __call__(self, stream=None):
                assert self.width_in_bytes <= min(self.src_pitch, self.dst_pitch)
                for row in range(self.height):
                    kind, src = self.src
                    start = row * self.src_pitch
                    data = src[start:start + self.width_in_bytes] if kind == "host" else memory.view(src + start, self.width_in_bytes).copy()
                    memory.view(self.dst + row * self.dst_pitch, self.width_in_bytes)[:] = data

        return Copy2D()


class _FakeEngineRunner:
    """A TrtRunner stand-in: TensorRT's execution context is ONNX Runtime on the same graph, reading its inputs from
    and writing its outputs to the fake device memory at the addresses TrtDecodeStep bound."""

    def __init__(self, graph, memory):
        from runtime.synth.trt_runner import _DeviceBuffer

        self._cuda, self._buffer_type = memory, _DeviceBuffer
        self.ort = OrtRunner(graph, providers=["CPUExecutionProvider"])
        self.path = graph
        self.dtypes = {i.name: np.dtype(np.int64 if "int64" in i.type else np.float32) for i in self.ort.session.get_inputs()}
        self.dtypes |= {o.name: np.dtype(np.float32) for o in self.ort.session.get_outputs()}
        self.shapes, self.addresses, self._buffers = {}, {}, {}
        runner = self

        class Context:
            def set_input_shape(self, name, shape):
                runner.shapes[name] = tuple(shape)
                return True

            def set_tensor_address(self, name, ptr):
                runner.addresses[name] = ptr

        class Stream:
            def synchronize(self):
                pass

        self.context, self.stream = Context(), Stream()

    def buffer(self, name, nbytes):
        if name not in self._buffers:
            self._buffers[name] = self._buffer_type(self._cuda, nbytes)
        return self._buffers[name]

    def device_ptr(self, name):
        return self._buffers[name].ptr

    def _bind_outputs(self):
        shapes = {"logits": (1, VOCAB), "k_new": (LAYERS, 1, 1, WIDTH), "v_new": (LAYERS, 1, 1, WIDTH)}
        for name, shape in shapes.items():
            self.context.set_tensor_address(name, self.buffer(name, int(np.prod(shape)) * 4).ptr)
        return shapes

    def execute(self):
        feeds = {}
        for name, shape in self.shapes.items():
            dtype = self.dtypes[name]
            feeds[name] = self._cuda.view(self.addresses[name], int(np.prod(shape)) * dtype.itemsize).view(dtype).reshape(shape).copy()
        for name, value in self.ort.run(feeds).items():
            self._cuda.memcpy_htod_async(self.addresses[name], value.astype(np.float32))


def test_trt_decode_step_scatters_rows_into_head_major_device_caches(tmp_path):
    """TrtDecodeStep's device bookkeeping (prefill upload, per-step strided row scatter, static capacity with
    masking) on a fake device whose 'engine' is ORT: the tokens and logits equal the host prefix loop's."""
    from runtime.synth.trt_runner import KvLayout, TrtDecodeStep

    graph = _decode_step_graph(tmp_path / "gpt_decode_step.onnx")
    want_tokens, want_logits, (k_prefill, v_prefill) = _reference_tokens(OrtRunner(graph, providers=["CPUExecutionProvider"]), 5, 12, static=False)
    runner = _FakeEngineRunner(graph, _FakeDeviceMemory())
    step = TrtDecodeStep(runner, KvLayout(LAYERS, CAPACITY, WIDTH, HEADS), use_cuda_graph=False)
    assert runner.shapes["k_cache_0"] == (1, HEADS, CAPACITY, HEAD_DIM)
    tokens, logits = _greedy_on(step, k_prefill, v_prefill, 12)
    assert tokens == want_tokens
    np.testing.assert_allclose(logits, want_logits, rtol=1e-5, atol=1e-5)


def test_select_decode_step_falls_back_to_an_onnxruntime_runner(tmp_path):
    from runtime.synth.trt_runner import select_decode_step

    graph = _decode_step_graph(tmp_path / "gpt_decode_step.onnx")
    step, backend = select_decode_step(graph, tmp_path / "engines", n_layer=LAYERS, d_model=WIDTH, capacity=CAPACITY, platform=ORIN)
    assert isinstance(step, OrtRunner) and backend.startswith("onnxruntime:")
