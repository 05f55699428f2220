"""SoVITS v2 (s2) reference modules, written from the facts sheet; parameter names match the official `.pth` keys."""

from export.reference.sovits.synthesizer import (
    FULL_SOVITS_HPARAMS,
    TINY_SOVITS_HPARAMS,
    SovitsDims,
    SynthesizerV2,
    make_random_state_dict,
)

__all__ = ["FULL_SOVITS_HPARAMS", "TINY_SOVITS_HPARAMS", "SovitsDims", "SynthesizerV2", "make_random_state_dict"]
