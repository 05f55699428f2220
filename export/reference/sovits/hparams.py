"""SoVITS v2 hyper-parameters: the official `configs/s2.json` dict, a tiny variant for tests, and the structural
dims that the config does not hold (read from state-dict shapes when loading)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Final, Mapping

FULL_SOVITS_HPARAMS: Final[dict[str, Any]] = {
    "train": {
        "log_interval": 100, "eval_interval": 500, "seed": 1234, "epochs": 100, "learning_rate": 0.0001,
        "betas": [0.8, 0.99], "eps": 1e-09, "batch_size": 32, "fp16_run": True, "lr_decay": 0.999875,
        "segment_size": 20480, "init_lr_ratio": 1, "warmup_epochs": 0, "c_mel": 45, "c_kl": 1.0,
        "text_low_lr_rate": 0.4, "grad_ckpt": False,
    },
    "data": {
        "max_wav_value": 32768.0, "sampling_rate": 32000, "filter_length": 2048, "hop_length": 640,
        "win_length": 2048, "n_mel_channels": 128, "mel_fmin": 0.0, "mel_fmax": None, "add_blank": True,
        "n_speakers": 300, "cleaned_text": True,
    },
    "model": {
        "inter_channels": 192, "hidden_channels": 192, "filter_channels": 768, "n_heads": 2, "n_layers": 6,
        "kernel_size": 3, "p_dropout": 0.1, "resblock": "1", "resblock_kernel_sizes": [3, 7, 11],
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "upsample_rates": [10, 8, 2, 2, 2],
        "upsample_initial_channel": 512, "upsample_kernel_sizes": [16, 16, 8, 2, 2], "n_layers_q": 3,
        "use_spectral_norm": False, "gin_channels": 512, "semantic_frame_rate": "25hz", "freeze_quantizer": True,
    },
    "s2_ckpt_dir": "logs/s2/big2k1",
    "content_module": "cnhubert",
}


def _tiny() -> dict[str, Any]:
    hps = copy.deepcopy(FULL_SOVITS_HPARAMS)
    hps["model"].update(
        {
            "inter_channels": 16, "hidden_channels": 32, "filter_channels": 64, "n_heads": 2, "n_layers": 2,
            "upsample_initial_channel": 64, "gin_channels": 64,
            # product stays 640 (= hop_length at 32 kHz): 50 Hz frames → 32 kHz audio
            "upsample_rates": [10, 8, 8], "upsample_kernel_sizes": [20, 16, 16],
            "resblock_kernel_sizes": [3, 5], "resblock_dilation_sizes": [[1, 3], [1, 3]],
        }
    )
    return hps


TINY_SOVITS_HPARAMS: Final[dict[str, Any]] = _tiny()

N_PHONE_SYMBOLS_V2: Final = 732
SSL_DIM: Final = 768
CODEBOOK_BINS: Final = 1024
REF_ENC_BINS_V2: Final = 704
REF_ENC_HIDDEN: Final = 128
MRTE_HEADS: Final = 4
RELATIVE_WINDOW: Final = 4


@dataclass(frozen=True)
class SovitsDims:
    """Dims the config does not carry. Defaults are the official v2 values (MRTE width = gin)."""

    mrte_hidden: int = 512
    ref_enc_hidden: int = REF_ENC_HIDDEN
    ref_enc_bins: int = REF_ENC_BINS_V2
    n_phone_symbols: int = N_PHONE_SYMBOLS_V2
    ssl_dim: int = SSL_DIM
    codebook_bins: int = CODEBOOK_BINS

    @classmethod
    def defaults_for(cls, hparams: Mapping[str, Any]) -> "SovitsDims":
        return cls(mrte_hidden=int(hparams["model"]["gin_channels"]))

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, Any]) -> "SovitsDims":
        def shape(key: str) -> tuple[int, ...]:
            if key not in state_dict:
                raise KeyError(f"SoVITS state dict has no '{key}'; it is not a v2 s2 checkpoint")
            return tuple(state_dict[key].shape)

        embed = shape("quantizer.vq.layers.0._codebook.embed")
        return cls(
            mrte_hidden=shape("enc_p.mrte.c_pre.weight")[0],
            ref_enc_hidden=shape("ref_enc.spectral.0.fc.weight")[0],
            ref_enc_bins=shape("ref_enc.spectral.0.fc.weight")[1],
            n_phone_symbols=shape("enc_p.text_embedding.weight")[0],
            ssl_dim=embed[1],
            codebook_bins=embed[0],
        )
