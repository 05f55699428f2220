"""Fidelity gate: how close is each lower-precision graph to FP32, and which precision does `--precision auto` ship?

Measured on held-out calibration feeds (not the ones used for INT8 ranges), ONNX Runtime CPU, per graph kind:
- `gpt` (output `logits`): greedy-token agreement (argmax equal, teacher-forced: each feed is one position) and the
  logit error (max abs, and RMS error relative to the FP32 logits' RMS).
- `decoder` (output `audio`): waveform SNR in dB and the log-mel distance (mean |dB difference| of 80-band mel power).
- `embedding` (anything else, e.g. `ref_encoder`'s `ge`): RMS error relative to the FP32 output's RMS.
Thresholds are the documented constants below. On random-weight checkpoints the numbers are a smoke test of the
pipeline, not a quality claim: the report says so.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Mapping, Optional, Sequence

import numpy as np

from export.errors import ExportError

_LOGGER = logging.getLogger(__name__)

# --- documented thresholds -------------------------------------------------------------------------------------
GPT_MIN_TOKEN_AGREEMENT: Final = 0.98  # fraction of held-out positions whose greedy token equals FP32's
GPT_MAX_LOGIT_REL_RMS: Final = 0.05  # RMS(logits - fp32) / RMS(fp32 logits)
DECODER_MIN_SNR_DB: Final = 25.0  # waveform SNR vs FP32
DECODER_MAX_LOG_MEL_DB: Final = 1.0  # mean absolute log-mel difference, dB
EMBEDDING_MAX_REL_RMS: Final = 0.02

RANDOM_WEIGHTS_NOTE: Final = (
    "fidelity measured against FP32 of the same graphs; on random-weight checkpoints it is a smoke test of the "
    "quantization pipeline, not a quality claim"
)
PREFERENCE: Final = ("int8", "int8_cpu", "int8_cpu_residual", "int8_block", "int8_column", "int8_dynamic", "fp16", "fp32")  # cheapest first; fp32 is the reference and always passes

# log-mel settings (32 kHz GPT-SoVITS v2 audio)
MEL_SAMPLE_RATE_HZ: Final = 32000
MEL_N_FFT: Final = 1024
MEL_HOP: Final = 256
MEL_BANDS: Final = 80


@dataclass(frozen=True)
class FidelityThresholds:
    gpt_min_token_agreement: float = GPT_MIN_TOKEN_AGREEMENT
    gpt_max_logit_rel_rms: float = GPT_MAX_LOGIT_REL_RMS
    decoder_min_snr_db: float = DECODER_MIN_SNR_DB
    decoder_max_log_mel_db: float = DECODER_MAX_LOG_MEL_DB
    embedding_max_rel_rms: float = EMBEDDING_MAX_REL_RMS


@dataclass(frozen=True)
class FidelityResult:
    graph: str
    precision: str
    kind: str  # "gpt", "decoder", "embedding"
    metrics: Mapping[str, float]
    passed: bool
    failures: tuple[str, ...] = ()
    size_bytes: int = 0
    latency_ms: Optional[float] = None

    def to_dict(self) -> dict:
        out = {
            "precision": self.precision,
            "kind": self.kind,
            "passed": self.passed,
            "metrics": {k: _finite(v) for k, v in self.metrics.items()},
            "failures": list(self.failures),
            "size_bytes": self.size_bytes,
        }
        if self.latency_ms is not None:
            out["latency_ms"] = round(self.latency_ms, 3)
        return out


def failed_checks(result: FidelityResult) -> frozenset[str]:
    """The names of the gate's checks `result` failed ("token agreement", "SNR", ...): each failure's words up to
    its first number."""
    names = []
    for failure in result.failures:
        words = []
        for word in failure.split():
            try:
                float(word)
                break
            except ValueError:
                words.append(word)
        names.append(" ".join(words))
    return frozenset(names)


def _finite(value: float) -> float | str:
    value = float(value)
    return value if np.isfinite(value) else str(value)  # JSON has no inf/nan


def graph_kind(graph_name: str) -> str:
    if graph_name.startswith("gpt"):
        return "gpt"
    if graph_name in ("sovits_decoder", "decoder", "vocoder"):
        return "decoder"
    return "embedding"


def _rel_rms(reference: np.ndarray, candidate: np.ndarray) -> float:
    ref = reference.astype(np.float64)
    err = candidate.astype(np.float64) - ref
    denom = np.sqrt(np.mean(ref**2)) + 1e-12
    return float(np.sqrt(np.mean(err**2)) / denom)


def snr_db(reference: np.ndarray, candidate: np.ndarray) -> float:
    ref = reference.astype(np.float64).ravel()
    noise = candidate.astype(np.float64).ravel() - ref
    signal_power, noise_power = float(np.sum(ref**2)), float(np.sum(noise**2))
    if noise_power == 0.0:
        return float("inf")
    return 10.0 * np.log10((signal_power + 1e-20) / noise_power)


def _mel_filterbank(sample_rate_hz: int, n_fft: int, bands: int) -> np.ndarray:
    """Triangular HTK-mel filters, [bands, n_fft//2+1]."""
    def hz_to_mel(hz):
        return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)

    def mel_to_hz(mel):
        return 700.0 * (10.0 ** (np.asarray(mel) / 2595.0) - 1.0)

    edges_hz = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate_hz / 2.0), bands + 2))
    bins_hz = np.linspace(0.0, sample_rate_hz / 2.0, n_fft // 2 + 1)
    filters = np.zeros((bands, bins_hz.size))
    for band in range(bands):
        low, centre, high = edges_hz[band : band + 3]
        rising = (bins_hz - low) / max(centre - low, 1e-9)
        falling = (high - bins_hz) / max(high - centre, 1e-9)
        filters[band] = np.clip(np.minimum(rising, falling), 0.0, None)
    return filters


def log_mel_db(audio: np.ndarray, sample_rate_hz: int = MEL_SAMPLE_RATE_HZ) -> np.ndarray:
    """[frames, MEL_BANDS] mel power in dB (floor -100 dB) of a mono waveform."""
    signal = np.asarray(audio, dtype=np.float64).ravel()
    if signal.size < MEL_N_FFT:
        signal = np.pad(signal, (0, MEL_N_FFT - signal.size))
    frames = 1 + (signal.size - MEL_N_FFT) // MEL_HOP
    index = np.arange(MEL_N_FFT)[None, :] + MEL_HOP * np.arange(frames)[:, None]
    spectrum = np.abs(np.fft.rfft(signal[index] * np.hanning(MEL_N_FFT), axis=1)) ** 2
    mel = spectrum @ _mel_filterbank(sample_rate_hz, MEL_N_FFT, MEL_BANDS).T
    return 10.0 * np.log10(np.maximum(mel, 1e-10))


def log_mel_distance_db(reference: np.ndarray, candidate: np.ndarray) -> float:
    return float(np.mean(np.abs(log_mel_db(reference) - log_mel_db(candidate))))


def _run_all(path: Path, feeds: Sequence[Mapping[str, np.ndarray]], output: Optional[str]) -> list[np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    out_name = output or session.get_outputs()[0].name
    return [session.run([out_name], {k: v for k, v in feed.items() if k in names})[0] for feed in feeds]


def _output_for(kind: str) -> Optional[str]:
    return {"gpt": "logits", "decoder": "audio"}.get(kind)


def compare(
    graph: str, precision: str, reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray],
    kind: Optional[str] = None, thresholds: FidelityThresholds = FidelityThresholds(),
) -> FidelityResult:
    """Metrics and pass/fail for one graph at one precision from paired FP32/candidate outputs."""
    kind = kind or graph_kind(graph)
    if len(reference) != len(candidate) or not reference:
        raise ExportError(f"fidelity of {graph} ({precision}) needs the same nonzero number of FP32 and candidate outputs")
    failures = []
    if kind == "gpt":
        ref_tokens = [np.argmax(r.reshape(-1, r.shape[-1]), axis=-1) for r in reference]
        cand_tokens = [np.argmax(c.reshape(-1, c.shape[-1]), axis=-1) for c in candidate]
        agreement = float(np.mean(np.concatenate([a == b for a, b in zip(ref_tokens, cand_tokens)])))
        rel_rms = float(np.mean([_rel_rms(r, c) for r, c in zip(reference, candidate)]))
        max_abs = float(max(np.max(np.abs(r.astype(np.float64) - c)) for r, c in zip(reference, candidate)))
        metrics = {"token_agreement": agreement, "logit_rel_rms": rel_rms, "logit_max_abs": max_abs}
        if agreement < thresholds.gpt_min_token_agreement:
            failures.append(f"token agreement {agreement:.3f} < {thresholds.gpt_min_token_agreement}")
        if rel_rms > thresholds.gpt_max_logit_rel_rms:
            failures.append(f"logit rel RMS {rel_rms:.4f} > {thresholds.gpt_max_logit_rel_rms}")
    elif kind == "decoder":
        snr = float(np.min([snr_db(r, c) for r, c in zip(reference, candidate)]))
        mel = float(np.mean([log_mel_distance_db(r, c) for r, c in zip(reference, candidate)]))
        metrics = {"snr_db_min": snr, "log_mel_db": mel}
        if snr < thresholds.decoder_min_snr_db:
            failures.append(f"SNR {snr:.1f} dB < {thresholds.decoder_min_snr_db} dB")
        if mel > thresholds.decoder_max_log_mel_db:
            failures.append(f"log-mel distance {mel:.2f} dB > {thresholds.decoder_max_log_mel_db} dB")
    else:
        rel_rms = float(np.max([_rel_rms(r, c) for r, c in zip(reference, candidate)]))
        metrics = {"rel_rms": rel_rms}
        if rel_rms > thresholds.embedding_max_rel_rms:
            failures.append(f"rel RMS {rel_rms:.4f} > {thresholds.embedding_max_rel_rms}")
    return FidelityResult(graph, precision, kind, metrics, not failures, tuple(failures))


def measure_fidelity(
    graph: str,
    fp32_path: str | os.PathLike,
    candidate_path: str | os.PathLike,
    precision: str,
    held_out_inputs: Sequence[Mapping[str, np.ndarray]],
    *,
    kind: Optional[str] = None,
    thresholds: FidelityThresholds = FidelityThresholds(),
    output: Optional[str] = None,
) -> FidelityResult:
    """Run FP32 and candidate graphs on the held-out feeds (ONNX Runtime CPU) and judge the candidate."""
    from export.quantize import graph_size_bytes

    kind = kind or graph_kind(graph)
    if not held_out_inputs:
        raise ExportError(f"fidelity of {graph} ({precision}) needs held-out inputs; give more calibration texts")
    out_name = output or _output_for(kind)
    reference = _run_all(Path(fp32_path), held_out_inputs, out_name)
    candidate = _run_all(Path(candidate_path), held_out_inputs, out_name)
    result = compare(graph, precision, reference, candidate, kind, thresholds)
    result = FidelityResult(
        result.graph, result.precision, result.kind, result.metrics, result.passed, result.failures,
        size_bytes=graph_size_bytes(candidate_path),
    )
    _LOGGER.info(
        "fidelity graph=%s precision=%s passed=%s %s",
        graph, precision, result.passed, " ".join(f"{k}={v:.4g}" for k, v in result.metrics.items()),
    )
    return result


def fp32_result(graph: str, fp32_path: str | os.PathLike, kind: Optional[str] = None) -> FidelityResult:
    """The reference row: FP32 is FP32's own reference and always passes."""
    from export.quantize import graph_size_bytes

    return FidelityResult(graph, "fp32", kind or graph_kind(graph), {}, True, (), size_bytes=graph_size_bytes(fp32_path))


def choose_precision(results: Sequence[FidelityResult], preference: Sequence[str] = PREFERENCE) -> str:
    """The first precision in `preference` whose result passed; "fp32" when none did (FP32 always qualifies)."""
    passed = {r.precision for r in results if r.passed}
    for precision in preference:
        if precision == "fp32" or precision in passed:
            return precision
    return "fp32"


@dataclass(frozen=True)
class FidelityReport:
    results: tuple[FidelityResult, ...]
    chosen: Mapping[str, str]  # graph -> precision
    thresholds: FidelityThresholds = field(default_factory=FidelityThresholds)
    note: str = RANDOM_WEIGHTS_NOTE

    def to_dict(self) -> dict:
        graphs: dict[str, dict] = {}
        for r in self.results:
            graphs.setdefault(r.graph, {"chosen": self.chosen.get(r.graph, "fp32"), "precisions": {}})
            graphs[r.graph]["precisions"][r.precision] = r.to_dict()
        return {"note": self.note, "thresholds": vars(self.thresholds), "graphs": graphs}

    def write(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return path

    def format_table(self) -> str:
        """The short table the build prints at the end."""
        width = max([len("precision")] + [len(r.precision) + 1 for r in self.results])  # +1: the chosen mark
        lines = [f"{'graph':<16} {'precision':<{width}} {'size MB':>8}  {'result':<6} metrics"]
        for r in self.results:
            mark = "*" if self.chosen.get(r.graph) == r.precision else " "
            metrics = " ".join(f"{k}={v:.4g}" for k, v in r.metrics.items()) or "(reference)"
            verdict = "pass" if r.passed else "FAIL"
            lines.append(f"{r.graph:<16} {r.precision + mark:<{width}} {r.size_bytes / 1e6:>8.2f}  {verdict:<6} {metrics}")
            for failure in r.failures:
                lines.append(f"{'':<16} {'':<{width}} {'':>8}  {'':<6} - {failure}")
        lines.append("* = chosen. Note: " + self.note + ".")
        return "\n".join(lines)


def gate(
    results: Sequence[FidelityResult], preference: Sequence[str] = PREFERENCE, thresholds: FidelityThresholds = FidelityThresholds()
) -> FidelityReport:
    """Choose a precision per graph (for `--precision auto`) and bundle the results into a report."""
    by_graph: dict[str, list[FidelityResult]] = {}
    for r in results:
        by_graph.setdefault(r.graph, []).append(r)
    chosen = {graph: choose_precision(rs, preference) for graph, rs in by_graph.items()}
    for graph, precision in chosen.items():
        _LOGGER.info("precision chosen graph=%s precision=%s", graph, precision)
    return FidelityReport(tuple(results), chosen, thresholds)
