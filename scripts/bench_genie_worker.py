"""Runs INSIDE the separate genie-tts venv (launched by scripts/bench.py; never imported by skyvoice).

    <genie-venv>/bin/python scripts/bench_genie_worker.py convert GPT.ckpt SOVITS.pth OUT_DIR [TORCH_SITE]
    <genie-venv>/bin/python scripts/bench_genie_worker.py time MODEL_DIR SPEC.json RESULT.json

`convert` calls genie-tts's own converter (it needs torch: TORCH_SITE, our venv's site-packages, is appended to
sys.path so genie's pinned onnxruntime/numpy stay first). `time` loads the converted graphs the way genie-tts's engine
does (its fp16→fp32 in-RAM loader, its session options) and times its own graphs on the same workload as skyvoice:
prefill (t2s encoder + first-stage decoder), a fixed number of AR steps (its stop flag ignored, its growing KV fed
back as its engine does), and the VITS decoder. Synthetic inputs of the same sizes; the cost does not depend on values.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path


def _placeholder_data_dir() -> None:
    """genie-tts checks at import that hub-only files exist; empty placeholders satisfy it (nothing is downloaded)."""
    root = Path(tempfile.mkdtemp(prefix="genie-data-"))
    (root / "chinese-hubert-base").mkdir()
    (root / "speaker_encoder.onnx").write_bytes(b"")
    os.environ.setdefault("GENIE_DATA_DIR", str(root))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def convert(ckpt: str, pth: str, out_dir: str, torch_site: str | None) -> int:
    _placeholder_data_dir()
    if torch_site:
        sys.path.append(torch_site)
    from genie_tts.Converter.Converter import convert as genie_convert

    started = time.perf_counter()
    genie_convert(ckpt, pth, out_dir)
    print(json.dumps({"convert_s": time.perf_counter() - started}))
    return 0


def _rss_mb() -> float:
    """High-water RSS of this address space (VmHWM; ru_maxrss would carry the parent's across exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def time_graphs(model_dir: str, spec_path: str, result_path: str) -> int:
    _placeholder_data_dir()
    import numpy as np
    import onnxruntime
    from genie_tts.ModelManager import GSVModelFile, load_session_with_fp16_conversion

    spec = json.loads(Path(spec_path).read_text())
    model = Path(model_dir)
    load_before = os.getloadavg()[0]

    def load(onnx_name: str, bin_name: str | None):
        options = onnxruntime.SessionOptions()  # what genie-tts's ModelManager sets
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        if bin_name:
            return load_session_with_fp16_conversion(str(model / onnx_name), str(model / bin_name), ["CPUExecutionProvider"], options)
        return onnxruntime.InferenceSession(str(model / onnx_name), sess_options=options, providers=["CPUExecutionProvider"])

    started = time.perf_counter()
    encoder = load(GSVModelFile.T2S_ENCODER_FP32, None)
    first = load(GSVModelFile.T2S_FIRST_STAGE_DECODER_FP32, GSVModelFile.T2S_DECODER_WEIGHT_FP16)
    stage = load(GSVModelFile.T2S_STAGE_DECODER_FP32, GSVModelFile.T2S_DECODER_WEIGHT_FP16)
    vits = load(GSVModelFile.VITS_FP32, GSVModelFile.VITS_WEIGHT_FP16)
    load_s = time.perf_counter() - started

    rng = np.random.default_rng(0)
    sentences = []
    for item in spec["sentences"]:
        ref_len, text_len, tokens = spec["prompt_phones"], item["phones"], spec["tokens"]
        sentences.append({
            "ref_seq": rng.integers(1, 300, size=(1, ref_len), dtype=np.int64),
            "text_seq": rng.integers(1, 300, size=(1, text_len), dtype=np.int64),
            "ref_bert": np.zeros((ref_len, 1024), dtype=np.float32),
            "text_bert": np.zeros((text_len, 1024), dtype=np.float32),
            # ssl frames at 50 Hz: 2 per prompt token (the prompt tokens come from the ssl content)
            "ssl_content": rng.standard_normal((1, 768, 2 * spec["prompt_tokens"])).astype(np.float32),
            "tokens": tokens,
        })
    ref_audio = (0.1 * rng.standard_normal((1, int(spec["ref_seconds"] * 32000)))).astype(np.float32)
    names = [i.name for i in stage.get_inputs()]

    def one_sentence(s):
        t0 = time.perf_counter()
        x, prompts = encoder.run(None, {k: s[k] for k in ("ref_seq", "text_seq", "ref_bert", "text_bert", "ssl_content")})
        y, y_emb, *kv = first.run(None, {"x": x, "prompts": prompts})
        t1 = time.perf_counter()
        steps = []
        for _ in range(s["tokens"] - 1):
            a = time.perf_counter()
            y, y_emb, _stop, *kv = stage.run(None, dict(zip(names, [y, y_emb, *kv])))
            steps.append((time.perf_counter() - a) * 1e3)
        t2 = time.perf_counter()
        semantic = np.clip(y[:, -s["tokens"]:], 0, 1023).reshape(1, 1, -1).astype(np.int64)
        audio = vits.run(None, {"text_seq": s["text_seq"], "pred_semantic": semantic, "ref_audio": ref_audio})[0]
        t3 = time.perf_counter()
        return {"prefill_ms": (t1 - t0) * 1e3, "step_ms": steps, "loop_ms": (t2 - t1) * 1e3 / max(len(steps), 1), "decode_ms": (t3 - t2) * 1e3,
                "audio_s": audio.size / 32000.0, "total_s": t3 - t0}

    one_sentence(sentences[0])  # warm-up (ORT's first run allocates)
    runs = [one_sentence(s) for s in sentences]
    step_ms = sorted(x for r in runs for x in r["step_ms"])
    audio_s = sum(r["audio_s"] for r in runs)
    result = {
        "load_s": load_s,
        "prefill_ms": float(np.median([r["prefill_ms"] for r in runs])),
        # the decode step as every configuration reports it: the whole token loop per token, median over sentences
        "step_ms": float(np.median([r["loop_ms"] for r in runs])),
        "graph_step_ms_median": float(np.median(step_ms)),
        "graph_step_ms_p90": float(step_ms[int(0.9 * (len(step_ms) - 1))]),
        "decoder_rtf": sum(r["decode_ms"] for r in runs) / 1e3 / audio_s,
        "e2e_rtf": sum(r["total_s"] for r in runs) / audio_s,
        # genie-tts streams per sentence: the first audio is the whole first sentence
        "ttfa_ms": runs[0]["total_s"] * 1e3,
        "audio_s": audio_s,
        "peak_rss_mb": _rss_mb(),
        "onnxruntime": onnxruntime.__version__,
        "loadavg_1min": [load_before, os.getloadavg()[0]],
    }
    Path(result_path).write_text(json.dumps(result, indent=1))
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["convert"]:
        return convert(argv[1], argv[2], argv[3], argv[4] if len(argv) > 4 else None)
    if argv[:1] == ["time"]:
        return time_graphs(argv[1], argv[2], argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
