#!/usr/bin/env python3
"""Side-by-side speed benchmark: skyvoice (FP32, INT8) vs our PyTorch reference vs genie-tts, in one run.

    .venv/bin/python scripts/bench.py                       # full-size random checkpoints, all configurations
    .venv/bin/python scripts/bench.py --size tiny --skip-genie --out /tmp/b   # the smoke run (seconds)

Work: random-weight checkpoints in the official formats (`export.testing.write_test_set`), built into bundles with
`skyvoice build` (FP32 and, when `export.precision` is present, INT8) and one voice; a fixed set of sentences with a
FIXED number of generated tokens per sentence (EOS ignored, so random weights cannot change the work). Every
configuration runs in its own subprocess (so its peak RSS is its own) on the same workload and reports: ms per GPT
decode step (the whole token loop of a sentence per token, host sampling and cache upkeep included, measured alike
for every configuration), prefill ms, decoder real-time factor, end-to-end RTF (whole-utterance mode),
time to first audio (streaming, a two-sentence announcement), the streamed-vs-whole seam error, peak RSS and the
bundle size on disk. genie-tts is installed (pinned) into its own venv, converts the same checkpoints with its own
converter and times its own graphs (scripts/bench_genie_worker.py); if that fails it is skipped with the reason.
Results: OUT/results.json, OUT/results.md and OUT/results.png (if matplotlib is importable).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runtime.bundle.build_choices import DECODER_CPU_FORMS, GPT_CPU_FORMS  # noqa: E402  (after the path: the repo's runtime, torch-free)

GENIE_VERSION = "2.0.2"
VOICE = "bench"
REF_TEXT = "Attention please, the train is arriving."
SENTENCES = (
    "Attention please, the train to the airport is now arriving at platform two.",
    "Please stand clear of the doors and mind the gap.",
    "The next service will depart in approximately ten minutes.",
)
ANNOUNCEMENT = (SENTENCES[0], SENTENCES[1])  # the two-sentence announcement for time to first audio
TARGETS = {  # issue 5, on a 2-core x86 VM
    "step_ms_int8": 8.0, "vs_genie": 3.0, "vs_torch": 6.0, "e2e_rtf": 0.35, "ttfa_ms": 500.0,
    "peak_rss_mb": 800.0, "int8_bundle_mb": 150.0,
}


# ---- helpers ------------------------------------------------------------------------------------------------------
def _peak_rss_mb() -> float:
    """This process's own high-water RSS (VmHWM is per address space; ru_maxrss would carry the parent's across exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _dir_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def _median(values) -> float:
    import numpy as np

    return float(np.median(np.asarray(list(values), dtype=np.float64)))


def machine() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cores": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                info["isa"] = sorted(f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "fma") if f in flags)
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["ram_gb"] = round(int(line.split()[1]) / 1024 / 1024, 1)
        info["loadavg_at_start"] = os.getloadavg()
    except OSError:
        pass
    import importlib.metadata as md

    info["versions"] = {}
    for package in ("onnxruntime", "numpy", "torch", "onnx"):
        try:
            info["versions"][package] = md.version(package)
        except md.PackageNotFoundError:
            pass
    return info


# ---- preparation (parent) -------------------------------------------------------------------------------------------
def prepare(work: Path, size: str, log, gpt_cpu_forms: tuple[str, ...] = (), decoder_cpu_forms: tuple[str, ...] = ()) -> dict:
    """Checkpoints, the FP32 bundle and (if export.precision exists) the INT8 bundle, each with the bench voice, plus
    one INT8 bundle per named GPT CPU form (`int8:FORM`) and per named decoder CPU form (`int8-decoder:FORM`). Reused
    when already present in `work` (delete the folder to rebuild)."""
    from export.testing import write_test_set

    work.mkdir(parents=True, exist_ok=True)
    ckpt_dir = work / "checkpoints"
    stamp = ckpt_dir / "done.json"
    if stamp.is_file():
        paths = {k: Path(v) for k, v in json.loads(stamp.read_text()).items()}
    else:
        log(f"writing {size} random checkpoints to {ckpt_dir}")
        paths = write_test_set(ckpt_dir, size)
        stamp.write_text(json.dumps({k: str(v) for k, v in paths.items()}))
    bundles = {"fp32": _bundle(work / "bundle_fp32", paths, "fp32", log)}
    try:
        import export.precision  # noqa: F401  (the INT8 path lands there)

        bundles["int8"] = _bundle(work / "bundle_int8", paths, "int8", log)
        for form in gpt_cpu_forms:
            bundles[f"int8:{form}"] = _bundle(work / f"bundle_int8_{form}", paths, "int8", log, gpt_cpu_form=form)
        for form in decoder_cpu_forms:
            bundles[f"int8-decoder:{form}"] = _bundle(work / f"bundle_int8_decoder_{form}", paths, "int8", log, decoder_cpu_form=form)
    except ImportError as exc:
        bundles["int8"] = None
        log(f"INT8 pending: export.precision is not importable ({exc})")
    return {"checkpoints": paths, "bundles": bundles}


def _bundle(out: Path, paths: dict, precision: str, log, gpt_cpu_form: str = "auto", decoder_cpu_form: str = "auto") -> Optional[Path]:
    from export.build import BuildConfig, Progress, build_bundle
    from export.voice_add import add_voice

    if not (out / "manifest.json").is_file():
        log(f"building the {precision} bundle {out} (minutes at full size)")
        import dataclasses

        extra = {"target": "cpu"} if "target" in {f.name for f in dataclasses.fields(BuildConfig)} else {}  # the CPU path
        if gpt_cpu_form != "auto":
            extra["gpt_cpu_form"] = gpt_cpu_form
        if decoder_cpu_form != "auto":
            extra["decoder_cpu_form"] = decoder_cpu_form
        build_bundle(BuildConfig(gpt_path=paths["gpt"], sovits_path=paths["sovits"], out_dir=out, precision=precision, force=True,
                                 **extra), Progress(enabled=True))
    if not (out / "voices" / f"{VOICE}.npz").is_file():
        add_voice(bundle_dir=out, name=VOICE, ref_wav=paths["ref_wav"], hubert_dir=paths["hubert"], ref_text=REF_TEXT, lang="en")
    return out


def phone_ids(sentences) -> list[list[int]]:
    from runtime.text.frontend import TextFrontend

    frontend = TextFrontend()
    return [list(frontend.phonemize(s, "en").ids) for s in sentences]


# ---- workers (each in its own subprocess) ----------------------------------------------------------------------------
def playback_stalls(arrivals: list[tuple[float, float]], min_gap_s: float = 0.001) -> dict:
    """Playback that starts with the first piece and plays pieces back to back: total time it would wait for audio
    (stall_ms) and how many times (stalls). `arrivals`: (seconds since the request, piece seconds) per piece."""
    stall_s, stalls, play_end = 0.0, 0, None
    for arrived, seconds in arrivals:
        if play_end is None:
            play_end = arrived + seconds
            continue
        gap = arrived - play_end
        if gap > min_gap_s:
            stall_s += gap
            stalls += 1
        play_end = max(play_end, arrived) + seconds
    return {"stall_ms": stall_s * 1e3, "stalls": stalls}


def worker_skyvoice(spec: dict) -> dict:
    import numpy as np

    from runtime.synth.gpt_loop import BERT_DIM
    from runtime.synth.synthesizer import SynthesisOptions
    from runtime.synth.voice_engine import NeuralSynthesizer

    started = time.perf_counter()
    synth = NeuralSynthesizer(spec["bundle"], threads=spec.get("threads", 0))
    synth.gpt.ignore_eos = True  # bench-only: a fixed amount of work
    voice = spec.get("voice", VOICE)
    pack = synth.voice(voice)
    load_s = time.perf_counter() - started
    tokens = spec["tokens"]
    options = SynthesisOptions(max_tokens=tokens, seed=0, stream=False)
    spt, sr = synth.samples_per_token, synth.sample_rate_hz

    def gpt_inputs(target):
        phones = np.concatenate([np.asarray(pack.prompt_phones, np.int64), np.asarray(target, np.int64)])
        bert = np.zeros((phones.size, BERT_DIM), np.float32)
        return phones.reshape(1, -1), bert.reshape(1, -1, BERT_DIM), np.asarray(pack.prompt_tokens, np.int64).reshape(1, -1)

    ge = np.asarray(pack.ge, np.float32).reshape(1, -1, 1)
    sentences = spec["sentences"]
    # warm-up: one short generate + decode (ORT allocates on first runs)
    phones, bert, prompt = gpt_inputs(sentences[0])
    warm = synth.gpt.generate_all(phones, bert, prompt, SynthesisOptions(max_tokens=8, seed=0))
    synth.decoder.decode(np.asarray(warm), sentences[0], ge, 0.5, 1.0, np.random.default_rng(0))

    prefill_ms, step_ms, kv_step_ms, decode_s, audio_s = [], [], [], 0.0, 0.0
    kv = synth.gpt.kv
    inner_step, inner_prefill = kv.step, synth.gpt.prefill.run
    timings: list[float] = []
    in_loop_prefill: list[float] = []

    def timed_step(*args):
        t = time.perf_counter()
        out = inner_step(*args)
        timings.append(time.perf_counter() - t)
        return out

    def timed_prefill(*args, **kwargs):
        t = time.perf_counter()
        out = inner_prefill(*args, **kwargs)
        in_loop_prefill.append(time.perf_counter() - t)
        return out

    kv.step, synth.gpt.prefill.run = timed_step, timed_prefill
    for target in sentences:
        phones, bert, prompt = gpt_inputs(target)
        timings.clear()
        in_loop_prefill.clear()
        t0 = time.perf_counter()
        out = synth.gpt.generate_all(phones, bert, prompt, options)
        gen_s = time.perf_counter() - t0
        prefill_ms.append(in_loop_prefill[0] * 1e3)
        # the decode loop per token: everything after the prefill graph (cache load, steps, host sampling)
        step_ms.append((gen_s * 1e3 - prefill_ms[-1]) / max(len(out) - 1, 1))
        kv_step_ms.extend(x * 1e3 for x in timings)
        t0 = time.perf_counter()
        audio = synth.decoder.decode(np.asarray(out), target, ge, 0.5, 1.0, np.random.default_rng(0))
        decode_s += time.perf_counter() - t0
        audio_s += audio.size / sr
    kv.step, synth.gpt.prefill.run = inner_step, inner_prefill

    items = [("", list(t), None) for t in sentences]
    t0 = time.perf_counter()
    speech = sum(c.samples.size for c in synth.synthesize_sentences(items, voice=voice, options=options, cancel=None, utterances=None))
    e2e_s = time.perf_counter() - t0
    e2e_audio_s = len(sentences) * tokens * spt / sr

    # streaming: time to first audio for the two-sentence announcement, and the seam error vs whole-utterance
    announcement = [("", list(t), None) for t in spec["announcement"]]
    quiet = SynthesisOptions(max_tokens=tokens, seed=1, stream=True, noise_scale=0.0)
    t0 = time.perf_counter()
    ttfa_ms, pieces, arrivals = None, [], []
    for chunk in synth.synthesize_sentences(announcement, voice=voice, options=quiet, cancel=None, utterances=None):
        if ttfa_ms is None and chunk.samples.size:
            ttfa_ms = (time.perf_counter() - t0) * 1e3
        pieces.append(chunk.samples)
        if chunk.samples.size:
            arrivals.append((time.perf_counter() - t0, chunk.samples.size / sr))
    stream_s = time.perf_counter() - t0
    stalls = playback_stalls(arrivals)
    streamed = np.concatenate(pieces)
    whole_opts = SynthesisOptions(max_tokens=tokens, seed=1, stream=False, noise_scale=0.0)
    whole = np.concatenate([c.samples for c in synth.synthesize_sentences(announcement, voice=voice, options=whole_opts,
                                                                           cancel=None, utterances=None)])
    n = min(streamed.size, whole.size)
    err = streamed[:n].astype(np.float64) - whole[:n]
    rms = float(np.sqrt(np.mean(whole[:n].astype(np.float64) ** 2))) or 1e-12
    seam = {"rel_rms_error": float(np.sqrt(np.mean(err**2)) / rms), "max_abs_error": float(np.abs(err).max()),
            "length_match": bool(streamed.size == whole.size)}
    return {
        "load_s": load_s,
        "prefill_ms": _median(prefill_ms),
        "step_ms": _median(step_ms),
        "kv_step_ms_median": _median(kv_step_ms),
        "kv_step_ms_p90": float(sorted(kv_step_ms)[int(0.9 * (len(kv_step_ms) - 1))]),
        "decoder_rtf": decode_s / audio_s,
        "e2e_rtf": e2e_s / e2e_audio_s,
        "speech_samples": int(speech),
        "ttfa_ms": ttfa_ms,
        "stream_rtf": stream_s / (len(announcement) * tokens * spt / sr),
        "stall_ms": stalls["stall_ms"],
        "stalls": stalls["stalls"],
        "seam": seam,
        "backends": synth.backends,
        "peak_rss_mb": _peak_rss_mb(),
    }


def worker_torch(spec: dict) -> dict:
    import numpy as np
    import torch

    from export.build import BuildConfig, load_models
    from export.graphs.sovits_decoder import SovitsDecoderGraph
    from runtime.synth.voice_pack import VoicePack

    torch.set_num_threads(spec.get("threads") or os.cpu_count() or 1)
    started = time.perf_counter()
    config = BuildConfig(gpt_path=Path(spec["gpt"]), sovits_path=Path(spec["sovits"]), out_dir=Path("/nonexistent"))
    _, gpt, _, sovits = load_models(config)
    decoder = SovitsDecoderGraph(sovits).eval()
    pack = VoicePack.load(Path(spec["bundle"]) / "voices" / f"{spec.get('voice', VOICE)}.npz")
    load_s = time.perf_counter() - started
    tokens, spt, sr = spec["tokens"], spec["samples_per_token"], spec["sample_rate_hz"]
    ge = torch.from_numpy(np.asarray(pack.ge, np.float32).reshape(1, -1, 1))
    inter = sovits.inter_channels

    def sentence(target, n_tokens):
        phones = torch.from_numpy(np.concatenate([np.asarray(pack.prompt_phones, np.int64), np.asarray(target, np.int64)])).reshape(1, -1)
        bert = torch.zeros(1, phones.shape[1], 1024)
        prompt = torch.from_numpy(np.asarray(pack.prompt_tokens, np.int64)).reshape(1, -1)
        p_len = prompt.shape[1]
        with torch.no_grad():
            t0 = time.perf_counter()
            logits, k, v = gpt.prefill(phones, bert, prompt)
            t1 = time.perf_counter()
            out = []
            for idx in range(n_tokens):
                token = int(torch.argmax(logits[0, :1024]))
                out.append(token)
                if idx == n_tokens - 1:
                    break
                logits, k_new, v_new = gpt.decode_step(torch.tensor([[token]]), torch.tensor([p_len + idx]),
                                                       torch.tensor([k[0].shape[1]]), k, v)
                k = [torch.cat([a, b], dim=1) for a, b in zip(k, k_new)]
                v = [torch.cat([a, b], dim=1) for a, b in zip(v, v_new)]
            t2 = time.perf_counter()
            sem = torch.tensor([out], dtype=torch.long)
            noise = torch.randn(1, inter, 2 * n_tokens + 2)
            audio = decoder(sem, torch.from_numpy(np.asarray(target, np.int64)).reshape(1, -1), ge, noise,
                            torch.tensor([0.5]), torch.tensor([1.0]))
            t3 = time.perf_counter()
        return (t1 - t0) * 1e3, (t2 - t1) * 1e3 / max(n_tokens - 1, 1), t3 - t2, audio.numel() / sr, t3 - t0

    sentence(spec["sentences"][0], 8)  # warm-up
    runs = [sentence(t, tokens) for t in spec["sentences"]]
    audio_s = sum(r[3] for r in runs)
    return {
        "load_s": load_s,
        "prefill_ms": _median(r[0] for r in runs),
        "step_ms": _median(r[1] for r in runs),
        "decoder_rtf": sum(r[2] for r in runs) / audio_s,
        "e2e_rtf": sum(r[4] for r in runs) / (len(runs) * tokens * spt / sr),
        "ttfa_ms": runs[0][4] * 1e3,  # no streaming: the first audio is the whole first sentence
        "ttfa_note": "whole first sentence (no streaming)",
        "torch_threads": torch.get_num_threads(),
        "peak_rss_mb": _peak_rss_mb(),
    }


WORKERS = {"skyvoice": worker_skyvoice, "torch": worker_torch}
TIMED = ("step_ms", "prefill_ms", "decoder_rtf", "e2e_rtf", "ttfa_ms", "stream_rtf", "stall_ms", "kv_step_ms_median", "kv_step_ms_p90",
         "graph_step_ms_median")


def merge_rounds(rounds: list[dict[str, dict]]) -> dict[str, dict]:
    """Configurations were timed in interleaved rounds on a shared box: keep, per timed figure, the least disturbed
    round (the minimum), the largest peak RSS, and every round's figures under "rounds"."""
    merged: dict[str, dict] = {}
    for name in rounds[0]:
        runs = [r[name] for r in rounds if "step_ms" in r.get(name, {})]
        if not runs:
            merged[name] = rounds[0][name]
            continue
        out = dict(runs[0])
        for key in TIMED:
            values = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
            if values:
                out[key] = min(values)
        out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
        if all("stall_ms" in r for r in runs):  # the stall count belongs to the round whose stall time is kept
            out["stalls"] = min(runs, key=lambda r: r["stall_ms"])["stalls"]
        out["rounds"] = [{k: r.get(k) for k in TIMED + ("stalls", "peak_rss_mb", "loadavg_1min")} for r in runs]
        merged[name] = out
    return merged


def run_worker(kind: str, spec: dict, work: Path, env_extra: Optional[dict] = None, timeout_s: int = 1800) -> dict:
    """Run one configuration in a fresh interpreter; returns its result dict or {"error": ...}."""
    spec_path = work / f"spec_{spec['name']}.json"
    result_path = work / f"result_{spec['name']}.json"
    spec_path.write_text(json.dumps(spec))
    result_path.unlink(missing_ok=True)
    env = dict(os.environ, **(env_extra or {}))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, str(spec_path), str(result_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0 or not result_path.is_file():
        return {"error": f"worker {kind} exited {proc.returncode}: {proc.stderr.strip()[-800:]}"}
    return json.loads(result_path.read_text())


# ---- genie-tts (separate venv) ---------------------------------------------------------------------------------------
def run_genie(work: Path, checkpoints: dict, spec: dict, log) -> dict:
    venv = work / f"genie-venv-{GENIE_VERSION}"
    python = venv / "bin" / "python"
    worker = ROOT / "scripts" / "bench_genie_worker.py"
    try:
        if not python.is_file():
            log(f"installing genie-tts=={GENIE_VERSION} into {venv}")
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
            subprocess.run([str(python), "-m", "pip", "install", "-q", f"genie-tts=={GENIE_VERSION}"], check=True,
                           capture_output=True, text=True, timeout=1200)
        model_dir = work / "genie_model"
        if not (model_dir / "t2s_shared_fp16.bin").is_file():
            import torch  # the converter imports torch: we lend it ours (appended after genie's own packages)

            torch_site = str(Path(torch.__file__).resolve().parent.parent)
            log("converting the checkpoints with genie-tts's converter")
            subprocess.run([str(python), str(worker), "convert", str(checkpoints["gpt"]), str(checkpoints["sovits"]),
                            str(model_dir), torch_site], check=True, capture_output=True, text=True, timeout=1200)
    except subprocess.CalledProcessError as exc:
        return {"skipped": f"genie-tts {GENIE_VERSION} could not be installed or convert: {(exc.stderr or '')[-600:]}"}
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"skipped": f"genie-tts {GENIE_VERSION} could not be installed or convert: {exc}"}
    spec_path, result_path = work / "spec_genie.json", work / "result_genie.json"
    spec_path.write_text(json.dumps(spec))
    result_path.unlink(missing_ok=True)
    proc = subprocess.run([str(python), str(worker), "time", str(model_dir), str(spec_path), str(result_path)],
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0 or not result_path.is_file():
        return {"error": f"genie worker exited {proc.returncode}: {proc.stderr.strip()[-800:]}"}
    result = json.loads(result_path.read_text())
    result["bundle_mb"] = _dir_mb(model_dir)
    result["version"] = GENIE_VERSION
    return result


# ---- report ----------------------------------------------------------------------------------------------------------
COLUMNS = (
    ("step_ms", "decode step ms", "{:.2f}"), ("prefill_ms", "prefill ms", "{:.0f}"), ("decoder_rtf", "decoder RTF", "{:.3f}"),
    ("e2e_rtf", "end-to-end RTF", "{:.3f}"), ("ttfa_ms", "first audio ms", "{:.0f}"), ("stall_ms", "stream stalls ms", "{:.0f}"),
    ("peak_rss_mb", "peak RSS MB", "{:.0f}"),
    ("bundle_mb", "bundle MB", "{:.0f}"),
)


def _cell(result: dict, key: str, fmt: str) -> str:
    value = result.get(key)
    return fmt.format(value) if isinstance(value, (int, float)) else "–"


def _targets(results: dict) -> list[tuple[str, str, str, str]]:
    """(figure, target, measured, verdict) rows for the best skyvoice configuration."""
    ours = results.get("skyvoice-int8") if "step_ms" in results.get("skyvoice-int8", {}) else results.get("skyvoice-fp32", {})
    name = "skyvoice-int8" if ours is results.get("skyvoice-int8") else "skyvoice-fp32"
    genie, torch_r = results.get("genie-tts", {}), results.get("torch-reference", {})
    rows = []

    def add(label, target, value, ok_if_le=True, fmt="{:.2f}"):
        if value is None:
            rows.append((label, target, "not measured", "–"))
            return
        ok = value <= float(target.split()[-1]) if ok_if_le else value >= float(target.split()[-1].rstrip("×"))
        rows.append((label, target, fmt.format(value), "met" if ok else "MISSED"))

    step = ours.get("step_ms")
    add(f"decode step ms ({name})", "≤ 8", step)
    add("decode step speed-up vs genie-tts", "≥ 3×", genie["step_ms"] / step if step and "step_ms" in genie else None, False, "{:.2f}×")
    add("decode step speed-up vs PyTorch", "≥ 6×", torch_r["step_ms"] / step if step and "step_ms" in torch_r else None, False, "{:.2f}×")
    add(f"end-to-end RTF ({name})", "≤ 0.35", ours.get("e2e_rtf"), fmt="{:.3f}")
    add(f"time to first audio ms ({name})", "≤ 500", ours.get("ttfa_ms"), fmt="{:.0f}")
    add(f"peak RSS MB ({name})", "≤ 800", ours.get("peak_rss_mb"), fmt="{:.0f}")
    add("INT8 bundle MB", "≤ 150", results.get("skyvoice-int8", {}).get("bundle_mb"), fmt="{:.0f}")
    return rows


def write_markdown(report: dict, path: Path) -> None:
    m = report["machine"]
    lines = [
        f"# Benchmark results ({report['date']})",
        "",
        f"Machine: {m.get('cpu', '?')}, {m.get('cores')} cores, {m.get('ram_gb', '?')} GB RAM, ISA {', '.join(m.get('isa', []))}; "
        f"{m['platform']}; Python {m['python']}; " + ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items())
        + f". Load average at start: {', '.join(f'{x:.2f}' for x in m.get('loadavg_at_start', []))} (shared machine).",
        "",
        f"Workload: size `{report['size']}` random-weight checkpoints; {len(report['workload']['sentences'])} sentences of "
        f"{', '.join(str(n) for n in report['workload']['phones'])} phones, {report['workload']['tokens']} generated tokens each "
        f"(EOS ignored), prompt {report['workload']['prompt_phones']} phones + {report['workload']['prompt_tokens']} tokens; "
        f"time to first audio: the first two sentences, streaming. Each configuration ran in its own process, in "
        f"{report.get('rounds', 1)} interleaved round(s); each timed figure is the least disturbed round (all rounds in results.json).",
        "",
        "| configuration | " + " | ".join(c[1] for c in COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    for name, result in report["results"].items():
        if "skipped" in result or "error" in result or "pending" in result:
            why = result.get("skipped") or result.get("error") or result.get("pending")
            lines.append(f"| {name} | " + " | ".join("–" for _ in COLUMNS) + " |")
            lines.append(f"|  ↳ *{why.splitlines()[0][:200]}* |" + " |" * len(COLUMNS))
            continue
        lines.append(f"| {name} | " + " | ".join(_cell(result, k, f) for k, _, f in COLUMNS) + " |")
    lines += ["", "Against the targets (issue 5):", "", "| figure | target | measured | |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in report["targets"]]
    notes = report.get("notes", [])
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    path.write_text("\n".join(lines) + "\n")


def write_plot(report: dict, path: Path) -> Optional[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no PNG"
    results = {k: v for k, v in report["results"].items() if "step_ms" in v}
    keys = [("step_ms", "decode step (ms)"), ("e2e_rtf", "end-to-end RTF"), ("ttfa_ms", "first audio (ms)"), ("peak_rss_mb", "peak RSS (MB)")]
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.6))
    for ax, (key, label) in zip(axes, keys):
        names = [n for n in results if isinstance(results[n].get(key), (int, float))]
        ax.barh(names, [results[n][key] for n in names], color="#4a7ab5")
        ax.set_title(label, fontsize=10)
        ax.tick_params(labelsize=8)
    fig.suptitle(f"skyvoice bench {report['date']} ({report['machine'].get('cpu', '')}, {report['machine'].get('cores')} cores)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return None


# ---- main ------------------------------------------------------------------------------------------------------------
def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("full", "tiny"), default="full")
    parser.add_argument("--tokens", type=int, default=None, help="generated tokens per sentence (default 100 full, 12 tiny)")
    parser.add_argument("--skip-genie", action="store_true")
    parser.add_argument("--skip-torch", action="store_true")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder for checkpoints, bundles, genie venv")
    parser.add_argument("--out", type=Path, default=ROOT / "bench", help="where results.json/.md/.png go")
    parser.add_argument("--threads", type=int, default=0, help="ORT intra-op threads (0: all cores)")
    parser.add_argument("--gpt-cpu-form", action="append", default=[], choices=GPT_CPU_FORMS,
                        help="also time an INT8 bundle built with this GPT CPU form (repeatable)")
    parser.add_argument("--decoder-cpu-form", action="append", default=[], choices=DECODER_CPU_FORMS,
                        help="also time an INT8 bundle built with this SoVITS decoder CPU form (repeatable)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the least disturbed one counts per figure")
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "SPEC", "RESULT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        kind, spec_path, result_path = args.worker
        load_before = os.getloadavg()[0]
        result = WORKERS[kind](json.loads(Path(spec_path).read_text()))
        result["loadavg_1min"] = [load_before, os.getloadavg()[0]]  # the box is shared: how busy it was around the run
        Path(result_path).write_text(json.dumps(result, indent=1))
        return 0

    def log(message: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    work = args.work or Path(os.environ.get("TMPDIR", "/tmp")) / f"skyvoice-bench-{args.size}"
    tokens = args.tokens or (100 if args.size == "full" else 12)
    info = machine()
    prep = prepare(work, args.size, log, tuple(dict.fromkeys(args.gpt_cpu_form)), tuple(dict.fromkeys(args.decoder_cpu_form)))
    bundles = prep["bundles"]
    manifest = json.loads((bundles["fp32"] / "manifest.json").read_text())
    from runtime.synth.voice_pack import VoicePack

    pack = VoicePack.load(bundles["fp32"] / "voices" / f"{VOICE}.npz")
    sentences = phone_ids(SENTENCES)
    common = {
        "tokens": tokens, "sentences": sentences, "announcement": sentences[: len(ANNOUNCEMENT)], "threads": args.threads,
        "samples_per_token": int(manifest["sovits"]["samples_per_token"]), "sample_rate_hz": int(manifest["sovits"]["sample_rate_hz"]),
        "gpt": str(prep["checkpoints"]["gpt"]), "sovits": str(prep["checkpoints"]["sovits"]),
    }
    notes: list[str] = []
    def time_bundle(round_index: int, name: str, bundle: Path) -> dict:
        log(f"round {round_index + 1}/{args.rounds}: timing {name}")
        result = run_worker("skyvoice", dict(common, name=name, bundle=str(bundle)), work)
        result["bundle_mb"] = _dir_mb(bundle)
        graphs = json.loads((bundle / "manifest.json").read_text())["graphs"]
        result["graph_precision"] = {g: e.get("precision") for g, e in graphs.items()}
        return result

    def one_round(round_index: int) -> dict[str, dict]:
        results: dict[str, dict] = {}
        for precision in ("fp32", "int8"):
            name = f"skyvoice-{precision}"
            if bundles.get(precision) is None:
                results[name] = {"pending": "INT8 bundle pending: export/precision.py has not landed"}
                continue
            results[name] = time_bundle(round_index, name, bundles[precision])
        for key in (k for k in bundles if k.startswith(("int8:", "int8-decoder:")) and bundles[k] is not None):
            name = f"skyvoice-int8 ({'decoder' if key.startswith('int8-decoder:') else 'GPT'} {key.split(':', 1)[1]})"
            results[name] = time_bundle(round_index, name, bundles[key])
        best = "skyvoice-int8" if bundles.get("int8") else "skyvoice-fp32"
        # The same bundle with the decode step on ONNX Runtime (the graph the native step reads, run by ORT's kernels:
        # the product's path before 2026-12-03, and the path of every box without the native library) and with the
        # step on one thread instead of two (runtime.synth.voice_engine.DECODE_STEP_THREADS).
        source = str(bundles["int8" if bundles.get("int8") else "fp32"])
        for label, suffix, env in (("ONNX Runtime step", "ort", {"SKYVOICE_DECODE_STEP": "ort"}),
                                   ("1 step thread", "one", {"SKYVOICE_DECODE_STEP_THREADS": "1"})):
            log(f"round {round_index + 1}/{args.rounds}: timing {best} with the {label}")
            variant = run_worker("skyvoice", dict(common, name=f"{best}-{suffix}", bundle=source), work, env_extra=env)
            if "step_ms" in variant:
                variant["bundle_mb"] = results[best].get("bundle_mb")
            results[f"{best} ({label})"] = variant
        if not args.skip_torch:
            log(f"round {round_index + 1}/{args.rounds}: timing the PyTorch reference")
            results["torch-reference"] = run_worker("torch", dict(common, name="torch", bundle=str(bundles["fp32"])), work)
            if "step_ms" in results["torch-reference"]:
                results["torch-reference"]["bundle_mb"] = (prep["checkpoints"]["gpt"].stat().st_size + prep["checkpoints"]["sovits"].stat().st_size) / 1e6
                notes.append("torch-reference bundle MB = the two checkpoints (fp16 on disk); its first audio is the whole first sentence.")
        if args.skip_genie:
            results["genie-tts"] = {"skipped": "--skip-genie"}
        elif args.size != "full":
            results["genie-tts"] = {"skipped": "genie-tts converts only full-size V2 checkpoints (its weight templates are fixed)"}
        else:
            log(f"round {round_index + 1}/{args.rounds}: timing genie-tts")
            genie_spec = {"sentences": [{"phones": len(s)} for s in sentences], "tokens": tokens,
                          "prompt_phones": len(pack.prompt_phones), "prompt_tokens": int(len(pack.prompt_tokens)), "ref_seconds": 4.0}
            results["genie-tts"] = run_genie(work, prep["checkpoints"], genie_spec, log)
            if "step_ms" in results["genie-tts"]:
                notes.append(f"genie-tts {GENIE_VERSION} (onnxruntime {results['genie-tts'].get('onnxruntime')}, its pinned version) "
                             "times its own converted graphs with its own loader; sampling is inside its step graph; its first audio "
                             "is the whole first sentence (it streams per sentence).")
                notes.append("decode step ms, every configuration alike: the whole token loop of a sentence (step graph, cache "
                             "upkeep, host sampling) per generated token, median over the sentences; the bare step-graph medians "
                             "are in results.json (kv_step_ms_median for skyvoice, graph_step_ms_median for genie-tts).")
        return results

    results = merge_rounds([one_round(i) for i in range(args.rounds)])
    notes = list(dict.fromkeys(notes))  # each round adds the same notes
    for name, r in results.items():
        if "seam" in r:
            notes.append(f"{name}: streamed vs whole-utterance waveform (noise_scale 0): relative RMS error "
                         f"{r['seam']['rel_rms_error']:.2e}, max abs {r['seam']['max_abs_error']:.2e}.")
        if "stall_ms" in r:
            notes.append(f"{name}: streaming the announcement, playback started at the first piece would wait "
                         f"{r['stall_ms']:.0f} ms in {r.get('stalls', '?')} stall(s) (streaming RTF {r['stream_rtf']:.2f}).")
    report = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "size": args.size,
        "rounds": args.rounds,
        "machine": info,
        "workload": {"sentences": list(SENTENCES), "phones": [len(s) for s in sentences], "tokens": tokens,
                     "prompt_phones": len(pack.prompt_phones), "prompt_tokens": int(len(pack.prompt_tokens))},
        "results": results,
        "notes": notes,
    }
    report["targets"] = _targets(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    write_markdown(report, args.out / "results.md")
    why = write_plot(report, args.out / "results.png")
    if why:
        log(why)
    print((args.out / "results.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
