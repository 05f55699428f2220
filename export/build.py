"""`skyvoice build`: official checkpoints → validated ONNX graphs (→ INT8 where fidelity allows) → a bundle directory.

The bundle is assembled in `<out>.partial/` and renamed into place only when every graph exported and passed its
parity check, so a failed build never leaves a half bundle where a good one was expected.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Final, Optional

from export.checkpoints import load_gpt_checkpoint, load_sovits_checkpoint, load_state_strict
from export.errors import ExportError
from runtime.bundle.build_choices import DECODER_CPU_FORMS as NAMED_DECODER_CPU_FORMS
from runtime.bundle.build_choices import GPT_CPU_FORMS as NAMED_GPT_CPU_FORMS, PRECISIONS, TARGETS

_LOGGER = logging.getLogger(__name__)

GPT_CPU_FORMS: Final = ("auto", *NAMED_GPT_CPU_FORMS)  # auto: the build machine times the forms
DECODER_CPU_FORMS: Final = ("auto", *NAMED_DECODER_CPU_FORMS)
DEFAULT_KV_CAPACITY: Final = 2048  # prompt + target phones + prompt tokens + up to 1500 generated tokens
MODEL_VERSION: Final = "v2"


@dataclass(frozen=True)
class BuildConfig:
    gpt_path: Path
    sovits_path: Path
    out_dir: Path
    precision: str = "fp32"
    target: str = "jetson"
    gpt_cpu_form: str = "auto"
    decoder_cpu_form: str = "auto"
    calibration_path: Optional[Path] = None
    kv_capacity: int = DEFAULT_KV_CAPACITY
    bundle_version: Optional[str] = None
    bert_dir: Optional[Path] = None  # local chinese-roberta-wwm-ext-large: ship Chinese BERT features (optional)
    g2pw_dir: Optional[Path] = None  # local G2PWModel (+ vocab.txt): Mandarin polyphones by g2pW (optional)
    force: bool = False
    seed: int = 0


@dataclass
class Progress:
    """Prints one line per long step to stderr (the build is interactive); silent when `enabled` is False."""

    enabled: bool = True
    started: float = field(default_factory=time.monotonic)

    def step(self, message: str) -> None:
        if self.enabled:
            print(f"[{time.monotonic() - self.started:7.1f}s] {message}", file=sys.stderr, flush=True)


def _tool_versions() -> dict[str, str]:
    versions = {}
    for package in ("skyvoice", "torch", "onnx", "onnxruntime", "numpy"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _prepare_out_dir(config: BuildConfig) -> Path:
    out = config.out_dir
    if out.exists() and not config.force:
        raise ExportError(f"output {out} already exists; pass --force to replace it or choose another --out")
    staging = out.with_name(out.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)
    (staging / "graphs").mkdir(parents=True)
    (staging / "voices").mkdir()
    return staging


def load_models(config: BuildConfig):
    """Load both checkpoints strictly into our reference modules (eval mode, float32, weight norm folded)."""
    from export.reference.gpt import Text2SemanticModel
    from export.reference.sovits import SynthesizerV2

    import torch

    gpt_ckpt = load_gpt_checkpoint(config.gpt_path)
    sovits_ckpt = load_sovits_checkpoint(config.sovits_path)
    try:
        with torch.device("meta"):
            gpt = Text2SemanticModel(gpt_ckpt.config)
        gpt = gpt.to_empty(device="cpu")
    except (KeyError, ValueError, TypeError) as exc:
        raise ExportError(f"{config.gpt_path}: config.model is not a GPT-SoVITS GPT config ({exc})") from None
    load_state_strict(gpt, gpt_ckpt.state_dict, config.gpt_path, "GPT")
    gpt.eval()
    try:
        from export.reference.sovits.synthesizer import SovitsDims

        sovits = SynthesizerV2(sovits_ckpt.hparams, SovitsDims.from_state_dict(sovits_ckpt.state_dict))
    except (KeyError, ValueError, TypeError) as exc:
        raise ExportError(f"{config.sovits_path}: config is not a SoVITS v2 config ({exc})") from None
    load_state_strict(sovits, sovits_ckpt.state_dict, config.sovits_path, "SoVITS")
    sovits.eval()
    sovits.fold_weight_norm()
    return gpt_ckpt, gpt, sovits_ckpt, sovits


def _graph_modules():
    from export.graphs import gpt_decode_step, gpt_prefill, prompt_encoder, ref_encoder, sovits_decoder

    return gpt_prefill, gpt_decode_step, sovits_decoder, ref_encoder, prompt_encoder


G2PW_BUNDLE_DIR: Final = "g2pw"


def _copy_g2pw(g2pw_dir: Path, staging: Path) -> str:
    """Check the directory loads (one clear error otherwise), then copy it into BUNDLE/g2pw/."""
    from runtime.text.g2pw import G2pwPredictor

    G2pwPredictor(g2pw_dir).load()
    target = staging / G2PW_BUNDLE_DIR
    shutil.copytree(g2pw_dir, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return G2PW_BUNDLE_DIR


def build_bundle(config: BuildConfig, progress: Optional[Progress] = None) -> Path:
    """Export, validate, optionally quantize, and write the bundle with its manifest; returns the bundle path."""
    from runtime.bundle.manifest import write_manifest

    if config.precision not in PRECISIONS:
        raise ExportError(f"--precision {config.precision!r} is not one of {', '.join(PRECISIONS)}")
    if config.target not in TARGETS:
        raise ExportError(f"--target {config.target!r} is not one of {', '.join(TARGETS)}")
    for flag, form, allowed in (("--gpt-cpu-form", config.gpt_cpu_form, GPT_CPU_FORMS),
                                ("--decoder-cpu-form", config.decoder_cpu_form, DECODER_CPU_FORMS)):
        if form not in allowed:
            raise ExportError(f"{flag} {form!r} is not one of {', '.join(allowed)}")
        if form != "auto" and (config.target != "cpu" or config.precision not in ("int8", "auto")):
            raise ExportError(
                f"{flag} {form} needs --target cpu and --precision int8 or auto "
                f"(got --target {config.target} --precision {config.precision})"
            )
    progress = progress or Progress()
    staging = _prepare_out_dir(config)
    try:
        progress.step(f"loading {config.gpt_path.name} and {config.sovits_path.name}")
        gpt_ckpt, gpt, sovits_ckpt, sovits = load_models(config)
        gpt_prefill, gpt_decode_step, sovits_decoder, ref_encoder, prompt_encoder = _graph_modules()
        exports: list[tuple[str, str, Callable, Callable, object]] = [
            ("gpt_prefill", gpt_prefill.SPEC.file, gpt_prefill.export_graph, gpt_prefill.validate_graph, gpt),
            ("gpt_decode_step", gpt_decode_step.spec_for(gpt.n_layer).file, gpt_decode_step.export_graph, gpt_decode_step.validate_graph, gpt),
            ("sovits_decoder", sovits_decoder.SPEC.file, sovits_decoder.export_graph, sovits_decoder.validate_graph, sovits),
            ("ref_encoder", ref_encoder.SPEC.file, ref_encoder.export_graph, ref_encoder.validate_graph, sovits),
            ("prompt_encoder", prompt_encoder.SPEC.file, prompt_encoder.export_graph, prompt_encoder.validate_graph, sovits),
        ]
        graphs: dict[str, dict] = {}
        for name, relative, export_fn, validate_fn, model in exports:
            path = staging / relative
            progress.step(f"exporting {name}")
            with warnings.catch_warnings():  # the tracer's deprecation/constant-folding notes are not for users
                warnings.simplefilter("ignore")
                export_fn(model, path)
            progress.step(f"validating {name} against PyTorch")
            parity = validate_fn(model, path, config.seed + 1)
            worst = max(parity.values(), key=lambda d: d["max_abs"])
            progress.step(f"  {name}: max_abs={worst['max_abs']:.3g} max_rel={worst['max_rel']:.3g}")
            graphs[name] = {"file": relative, "precision": "fp32", "parity": parity}
        if config.bert_dir is not None:
            from export.graphs.bert_zh import export_bert

            progress.step(f"exporting Chinese BERT from {config.bert_dir}")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                graphs["bert_zh"] = export_bert(config.bert_dir, staging, config.seed)
        if config.precision != "fp32":
            from export.precision import apply_precision

            progress.step(f"precision {config.precision}: calibrating and measuring fidelity")
            apply_precision(staging, graphs, gpt, sovits, config, progress)
        progress.step("storing the GPT weights once for prefill and decode step")
        from export.shared_weights import share_weights

        shared = share_weights([staging / graphs["gpt_prefill"]["file"], staging / graphs["gpt_decode_step"]["file"]])
        for name in ("gpt_prefill", "gpt_decode_step"):
            graphs[name]["external_data"] = "graphs/" + shared["file"]
        frontend = {}
        if config.g2pw_dir is not None:
            progress.step(f"adding the g2pW polyphone model from {config.g2pw_dir}")
            frontend["g2pw_dir"] = _copy_g2pw(config.g2pw_dir, staging)
        model_cfg = gpt_ckpt.config["model"]
        meta = {
            "model_version": MODEL_VERSION,
            "runtime_target": config.target,
            "tools": _tool_versions(),
            "source": {
                "gpt": {"file": config.gpt_path.name, "info": gpt_ckpt.info},
                "sovits": {"file": config.sovits_path.name, "info": sovits_ckpt.info},
            },
            "gpt": {
                "n_layer": gpt.n_layer,
                "d_model": gpt.dim,
                "n_head": gpt.heads,
                "vocab_size": gpt.vocab_size,
                "phoneme_vocab_size": gpt.phoneme_vocab_size,
                "eos": gpt.eos,
                "top_k": int(gpt_ckpt.config.get("inference", {}).get("top_k", 15)),
                "kv_capacity": config.kv_capacity,
                "max_sec": int(gpt_ckpt.config.get("data", {}).get("max_sec", 54)),
                "hidden_dim": int(model_cfg["hidden_dim"]),
            },
            "sovits": {
                "sample_rate_hz": sovits.sample_rate_hz,
                "hop_length": sovits.hop_length,
                "gin_channels": sovits.gin_channels,
                "inter_channels": sovits.inter_channels,
                "samples_per_token": 2 * sovits.hop_length,
            },
            "graphs": graphs,
            "frontend": frontend,
        }
        if config.bundle_version:
            meta["bundle_version"] = config.bundle_version
        progress.step("writing manifest")
        write_manifest(staging, meta)
        if config.out_dir.exists():
            shutil.rmtree(config.out_dir)
        os.replace(staging, config.out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    progress.step(f"bundle ready: {config.out_dir} (unsigned; sign it with 'skyvoice bundle sign')")
    return config.out_dir
