"""`--precision fp16|int8|auto`: calibrate on real data run through the model, measure fidelity, pick per graph.

Calibration data is what the box will actually see: the calibration texts (configs/calibration/, or `--calib FILE`)
are phonemized by the runtime frontend and run through the bundle's own FP32 graphs with the runtime decode loop.
The prompt is bootstrapped from the GPT itself and the speaker vector comes from the reference encoder on a synthetic
voiced signal (the build has no voices yet). Recorded per graph: prefill feeds, decode-step feeds at several steps,
decoder feeds. Every 4th text is held out for the fidelity gate and never sets an INT8 range.

Only the three graphs the box runs are lowered (gpt_prefill, gpt_decode_step, sovits_decoder); the reference and
prompt encoders run once per voice enrollment and stay FP32. With `--target cpu`, ONNX Runtime's CPU forms are
candidates too (dynamic INT8 and block-wise `MatMulNBits` INT8 for both GPT graphs, `int8_cpu` and
`int8_cpu_residual` for the SoVITS decoder), and for the GPT and the decoder the variant kept is the fastest of those inside the fidelity gate, measured
on this machine with the runtime's threads: the decoder by its own time (`export.quantize.fastest_variant`), the
GPT by one sentence's work, a prefill plus `SENTENCE_TOKENS` decode steps (the decode step on the runtime's
decode-step threads, as the box runs it). The prefill takes the decode step's form, so the two GPT graphs share one copy of the quantized weights.
When no INT8 form passed the gate and `--precision int8` forces one, the race is among the forms that failed the
same checks as the one nearest to FP32 (the gate judges fidelity; time decides between forms it judged alike).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Final, Mapping, Sequence

import numpy as np

from export.errors import ExportError
from export.fidelity import FidelityResult, failed_checks, fp32_result, gate, measure_fidelity
from export.quantize import KEEP_FLOAT, RESIDUAL_ADDS, fastest_variant, load_calibration_texts, pick_fastest, quantize_graph, split_calibration, time_graph_ms
from runtime.bundle.build_choices import DECODER_CPU_FORMS, GPT_CPU_FORMS

_LOGGER = logging.getLogger(__name__)

LOWERED_GRAPHS: Final = ("gpt_prefill", "gpt_decode_step", "sovits_decoder")
CALIBRATION_TOKENS: Final = 40  # GPT steps per calibration text (enough to cover early and later positions)
DECODE_STEPS_RECORDED: Final = (0, 5, 12, 25, 39)
BOOTSTRAP_PROMPT_TOKENS: Final = 60
MAX_TEXTS_PER_LANGUAGE: Final = 12


class _QuietQuantizerAdvice(logging.Filter):
    """onnxruntime.quantization logs generic pre-processing advice on the root logger at warning level for every graph."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage() and "pre-processing" not in str(record.msg)


class _RecordingRunner:
    """Wraps a decode-step runner and keeps a copy of the inputs at chosen steps (the calibration feeds)."""

    def __init__(self, runner, steps: Sequence[int]) -> None:
        self.runner = runner
        self.input_names, self.output_names, self.backend = runner.input_names, runner.output_names, runner.backend
        self.steps = set(steps)
        self.count = 0
        self.feeds: list[dict[str, np.ndarray]] = []

    def run(self, inputs, outputs=None):
        if self.count in self.steps:
            self.feeds.append({k: np.array(v, copy=True) for k, v in inputs.items()})
        self.count += 1
        return self.runner.run(inputs, outputs)


def _texts(config) -> list[tuple[str, str]]:
    from runtime.errors import FrontendError
    from runtime.text.frontend import TextFrontend

    frontend = TextFrontend()
    found = load_calibration_texts(path=config.calibration_path) if config.calibration_path else None
    if found is None:
        found = {}
        for lang in ("zh", "en", "ja", "ko", "yue"):
            try:
                found.update(load_calibration_texts((lang,)))
            except ExportError:
                continue
    phonemized = []
    for lang, texts in found.items():
        for text in texts[:MAX_TEXTS_PER_LANGUAGE]:
            try:
                phonemized.append((lang, list(frontend.phonemize(text, lang).ids)))
            except FrontendError as exc:  # a language this box's frontend lacks: calibrate on the others
                _LOGGER.info("calibration text skipped lang=%s reason=%s", lang, exc)
    if len(phonemized) < 4:
        raise ExportError("fewer than 4 calibration texts could be phonemized; give more with --calib FILE (lang<TAB>text lines)")
    return phonemized


def collect_feeds(staging: Path, graphs: Mapping[str, dict], config) -> dict[str, list[dict[str, np.ndarray]]]:
    """Run the FP32 graphs on the calibration texts; return feeds per lowered graph."""
    from export.testing import synthetic_voice
    from runtime.synth.gpt_loop import BERT_DIM, GptDecoder
    from runtime.synth.runner import OrtRunner
    from runtime.synth.spectrogram import reference_spectrogram
    from runtime.synth.synthesizer import SynthesisOptions

    runners = {name: OrtRunner(staging / graphs[name]["file"], providers=["CPUExecutionProvider"]) for name in graphs}
    recorder = _RecordingRunner(runners["gpt_decode_step"], DECODE_STEPS_RECORDED)
    import onnx

    decode_inputs = {i.name: i for i in onnx.load(str(staging / graphs["gpt_decode_step"]["file"]), load_external_data=False).graph.input}
    n_layer = sum(1 for name in decode_inputs if name.startswith("k_cache_"))
    cache_dims = decode_inputs["k_cache_0"].type.tensor_type.shape.dim  # head-major [1, H, C, D/H]
    n_head, d_model = cache_dims[1].dim_value, cache_dims[1].dim_value * cache_dims[3].dim_value
    capacity = 64 + BOOTSTRAP_PROMPT_TOKENS + CALIBRATION_TOKENS + 400
    gpt = GptDecoder(runners["gpt_prefill"], recorder, n_layer=n_layer, d_model=d_model, capacity=capacity, n_head=n_head)
    texts = _texts(config)
    rng = np.random.default_rng(config.seed)

    def run_gpt(phones: list[int], prompt: np.ndarray, tokens: int) -> list[int]:
        options = SynthesisOptions(seed=int(rng.integers(1 << 30)), max_tokens=tokens)
        bert = np.zeros((len(phones), BERT_DIM), dtype=np.float32)
        return gpt.generate_all(np.asarray(phones, dtype=np.int64), bert, prompt, options)

    prompt_phones = texts[0][1]
    prompt = np.asarray(run_gpt(prompt_phones, np.zeros(1, dtype=np.int64), BOOTSTRAP_PROMPT_TOKENS) or [0], dtype=np.int64)
    spectrogram = reference_spectrogram(synthetic_voice(4.0, 32000, config.seed))[None].astype(np.float32)
    ge = runners["ref_encoder"].run({"spectrogram": spectrogram})["ge"]
    channels = next(i.shape[1] for i in runners["sovits_decoder"].session.get_inputs() if i.name == "noise")
    feeds: dict[str, list] = {"gpt_prefill": [], "gpt_decode_step": [], "sovits_decoder": []}
    for index, (lang, phones) in enumerate(texts):
        all_phones = prompt_phones + phones
        feeds["gpt_prefill"].append({
            "phones": np.asarray([all_phones], dtype=np.int64),
            "bert_features": np.zeros((1, len(all_phones), BERT_DIM), dtype=np.float32),
            "prompt_tokens": prompt[None],
        })
        recorder.count = 0
        tokens = run_gpt(all_phones, prompt, CALIBRATION_TOKENS) or [0]
        frames = 2 * len(tokens)
        feeds["sovits_decoder"].append({
            "semantic_tokens": np.asarray([tokens], dtype=np.int64),
            "phones": np.asarray([phones], dtype=np.int64),
            "ge": ge,
            "noise": rng.standard_normal((1, int(channels), frames)).astype(np.float32),
            "noise_scale": np.array([0.5], dtype=np.float32),
            "speed": np.array([1.0], dtype=np.float32),
        })
    feeds["gpt_decode_step"] = recorder.feeds
    _LOGGER.info("calibration feeds %s", " ".join(f"{k}={len(v)}" for k, v in feeds.items()))
    return feeds


# Graphs whose CPU variant is picked by measured speed on `--target cpu` (the GPT prefill follows the decode step).
TIMED_ON_CPU: Final = ("gpt_decode_step", "sovits_decoder")
SENTENCE_TOKENS: Final = 75  # decode steps per prefill when the GPT's forms are timed (a ~3 s sentence, 25 tokens/s)
GPT_GRAPHS: Final = ("gpt_prefill", "gpt_decode_step")
CPU_FORMS: Final = {
    "gpt_prefill": GPT_CPU_FORMS,
    "gpt_decode_step": GPT_CPU_FORMS,
    "sovits_decoder": DECODER_CPU_FORMS,
}


def _ort_supports(mode: str) -> bool:
    """Whether this build machine's onnxruntime can make and run the `mode` form (the box needs the same)."""
    from runtime.errors import SynthesisError
    from runtime.synth.runner import check_precision_supported

    try:
        check_precision_supported("-", mode, "-")
    except SynthesisError:
        _LOGGER.info("precision candidate skipped mode=%s reason=onnxruntime too old", mode)
        return False
    return True


def _candidates(
    graph: str, precision: str, target: str = "jetson", gpt_cpu_form: str = "auto", decoder_cpu_form: str = "auto"
) -> list[str]:
    """`jetson` bundles keep every graph TensorRT-loadable (explicit Q/DQ); `cpu` bundles may use ONNX Runtime's CPU
    forms (dynamic or block-wise INT8 for both GPT graphs, the form the decode step keeps being shared with the
    prefill; the uint8 QLinearConv forms for the decoder), where this onnxruntime supports them. A named
    `gpt_cpu_form` is the only candidate for both GPT graphs, a named `decoder_cpu_form` for the decoder (the box's
    CPU, not the build machine's, decides)."""
    if precision == "fp16":
        return ["fp16"]
    if gpt_cpu_form != "auto" and target == "cpu" and graph in GPT_GRAPHS:
        if not _ort_supports(gpt_cpu_form):
            raise ExportError(f"--gpt-cpu-form {gpt_cpu_form} needs a newer onnxruntime on the build machine (and on the box)")
        return [gpt_cpu_form]
    if decoder_cpu_form != "auto" and target == "cpu" and graph == "sovits_decoder":
        return [decoder_cpu_form]
    modes = ["int8"] + ([m for m in CPU_FORMS[graph] if _ort_supports(m)] if target == "cpu" and graph in CPU_FORMS else [])
    return modes + (["fp16"] if precision == "auto" else [])


def _closest(graph: str, family: str, results: Sequence[FidelityResult]) -> str:
    """The `family` variant ("int8": int8, int8_cpu, int8_dynamic, int8_block) of `graph` nearest to FP32 in the gate's own
    metrics: GPT graphs by token agreement then logit error, the decoder by SNR. Used when none passed the gate but
    that family was asked for."""

    def closeness(result: FidelityResult) -> tuple[float, float]:
        m = result.metrics
        if "token_agreement" in m:
            return (m["token_agreement"], -m.get("logit_rel_rms", 0.0))
        return (m.get("snr_db_min", -m.get("rel_rms", 0.0)), 0.0)

    candidates = [r for r in results if r.graph == graph and r.precision.startswith(family)]
    return max(candidates, key=closeness).precision if candidates else family


def _racers(graph: str, chosen: str, results: Sequence[FidelityResult], variants: Mapping[str, Path]) -> list[str]:
    """The forms of `graph` the CPU timing race may pick between: FP32 and every CPU-runnable form that passed the gate;
    when none passed and `chosen` was forced, the forms that failed the same checks as `chosen` (the nearest)."""
    runnable = {"fp32", "int8", *CPU_FORMS.get(graph, ())}
    mine = [r for r in results if r.graph == graph and r.precision in variants and r.precision in runnable]
    passing = [r.precision for r in mine if r.passed and r.precision != "fp32"]
    if passing:
        return ["fp32", *passing]
    nearest = next((r for r in mine if r.precision == chosen), None)
    if nearest is None:
        return []
    return [r.precision for r in mine if r.precision != "fp32" and not r.passed and failed_checks(r) == failed_checks(nearest)]


def _fastest_gpt_form(
    forms: Sequence[str], variants: Mapping[str, Mapping[str, Path]], feeds: Mapping[str, list], passed_prefill: set[str], forced: bool
) -> tuple[str, dict[str, float]]:
    """The GPT form whose sentence takes least: prefill (all cores) + SENTENCE_TOKENS decode steps (on the runtime's
    decode-step threads). The prefill is timed in the form it will ship in: the step's form where the prefill may
    take it (it passed, or INT8 was forced), else FP32."""
    from runtime.synth.voice_engine import decode_step_threads

    step_threads = decode_step_threads()
    timings = {}
    for form in forms:
        shareable = form in CPU_FORMS["gpt_prefill"] and form in variants["gpt_prefill"]
        prefill_form = form if shareable and (form in passed_prefill or forced) else "fp32"
        prefill_ms = time_graph_ms(variants["gpt_prefill"][prefill_form], feeds["gpt_prefill"][:2], repeats=2)
        step_ms = time_graph_ms(variants["gpt_decode_step"][form], feeds["gpt_decode_step"][:3], repeats=5, threads=step_threads)
        timings[form] = prefill_ms + SENTENCE_TOKENS * step_ms
    return pick_fastest(timings), timings


def prefill_form(step: str, prefill: str, prefill_variants: Mapping[str, Path], may_share: bool, step_raced: bool) -> str:
    """The form the prefill ships in, given the decode step's. Where the step took a CPU form the prefill may take
    too (that form passed the prefill's gate, or INT8 was forced), the prefill shares it: the same quantized bytes in
    both graphs, so the GPT is stored once. Where the CPU race put the step in FP32, the prefill ships FP32 as well:
    that is the pair the race timed, and one FP32 copy of the GPT instead of an FP32 one plus an INT8 one."""
    if step in CPU_FORMS["gpt_prefill"] and step in prefill_variants and may_share:
        return step
    if step == "fp32" and step_raced:
        return "fp32"
    return prefill


def apply_precision(staging: Path, graphs: dict[str, dict], gpt, sovits, config, progress) -> None:
    """Lower the runtime graphs in place in `staging` per `config.precision`; record fidelity in graphs + fidelity.json."""
    quiet = _QuietQuantizerAdvice()
    root = logging.getLogger()
    filtered = [root, *root.handlers]  # the root logger itself too: with no handler, Python's last resort prints it
    for where in filtered:
        where.addFilter(quiet)
    try:
        _apply_precision(staging, graphs, config, progress)
    finally:
        for where in filtered:
            where.removeFilter(quiet)


def _apply_precision(staging: Path, graphs: dict[str, dict], config, progress) -> None:
    feeds = collect_feeds(staging, graphs, config)
    results: list[FidelityResult] = []
    variants: dict[str, dict[str, Path]] = {}
    for graph in LOWERED_GRAPHS:
        fp32_path = staging / graphs[graph]["file"]
        calibration, held_out = split_calibration(feeds[graph])
        if not held_out:
            held_out = calibration[-1:]
        results.append(fp32_result(graph, fp32_path))
        variants[graph] = {"fp32": fp32_path}
        for mode in _candidates(graph, config.precision, config.target, config.gpt_cpu_form, config.decoder_cpu_form):
            progress.step(f"{graph}: {mode} variant")
            out = fp32_path.with_name(f"{fp32_path.stem}.{mode}.onnx")
            quantize_graph(fp32_path, out, calibration, mode, keep_float=KEEP_FLOAT.get(graph, ()), single_row=graph == "gpt_decode_step",
                           residual_adds=RESIDUAL_ADDS.get(graph, ()))
            results.append(measure_fidelity(graph, fp32_path, out, mode, held_out))
            variants[graph][mode] = out
    report = gate(results)
    choices: dict[str, str] = {}
    raced: set[str] = set()
    for graph in LOWERED_GRAPHS:
        chosen = report.chosen.get(graph, "fp32")
        if config.precision in ("int8", "fp16") and chosen == "fp32":
            forced = _closest(graph, config.precision, results) if config.precision == "int8" else config.precision
            _LOGGER.warning("fidelity gate failed graph=%s precision=%s; shipping it because --precision %s was asked", graph, forced, config.precision)
            chosen = forced
        cpu_bundle = any(form in variants[graph] for form in CPU_FORMS.get(graph, ()))  # --target cpu (Jetson: TensorRT decides)
        racers = _racers(graph, chosen, results, variants[graph]) if graph in TIMED_ON_CPU and cpu_bundle and chosen.startswith("int8") else []
        if len(racers) > 1:  # else no other form is eligible: nothing to race (a forced pick stands)
            raced.add(graph)
            if graph == "gpt_decode_step":
                fastest, timings = _fastest_gpt_form(racers, variants, feeds, passed_prefill={
                    r.precision for r in results if r.graph == "gpt_prefill" and r.passed} | {"fp32"}, forced=config.precision == "int8")
                unit = "ms per sentence (prefill + %d steps)" % SENTENCE_TOKENS
            else:
                fastest, timings = fastest_variant({m: variants[graph][m] for m in racers}, feeds[graph][:3])
                unit = "CPU ms"
            progress.step(f"{graph} {unit}: " + " ".join(f"{k}={v:.2f}" for k, v in timings.items()) + f" -> {fastest}")
            if fastest != "fp32" or config.precision == "auto":
                chosen = fastest
        choices[graph] = chosen
    passed = {(r.graph, r.precision) for r in results if r.passed}
    step = choices["gpt_decode_step"]
    choices["gpt_prefill"] = prefill_form(
        step, choices["gpt_prefill"], variants["gpt_prefill"],
        may_share=("gpt_prefill", step) in passed or config.precision == "int8", step_raced="gpt_decode_step" in raced,
    )
    for graph, chosen in choices.items():
        target = staging / graphs[graph]["file"]
        if chosen != "fp32":
            os.replace(variants[graph][chosen], target)
        for mode, path in variants[graph].items():
            if mode not in ("fp32", chosen) and path.exists():
                path.unlink()
        graphs[graph]["precision"] = chosen
        graphs[graph]["fidelity"] = next(r.to_dict() for r in results if r.graph == graph and r.precision == chosen)
    report = type(report)(report.results, {g: graphs[g]["precision"] for g in LOWERED_GRAPHS}, report.thresholds)
    report.write(staging / "fidelity.json")
    progress.step("fidelity (vs FP32):\n" + report.format_table())
