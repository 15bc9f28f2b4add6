"""The project's own default NR model, shipped in the package so the quickstart is meaningful offline.

A colour variant of CNNIQA (Kang et al., CVPR 2014; see :mod:`benchmark.metrics.cnniqa`) trained by
``python -m benchmark.training.default_model`` on graded synthetic distortions of scikit-image's training
photographs, to predict ``100 · (MS-SSIM + FSIM) / 2`` against the pristine image. Higher is better,
range [0, 100]. It is a small, honest stand-in for a learned NR-IQA model: see the model card
``weights/DEFAULT_MODEL_CARD.md`` for what it is and is not.
"""
from __future__ import annotations

from pathlib import Path

from ..registry import METRICS
from .cnniqa import CNNIQAModel, load_state

WEIGHTS = Path(__file__).with_name("weights") / "default_cnniqa_rgb.pt"


@METRICS.register("default")
class DefaultModel(CNNIQAModel):
    """The shipped default NR model (colour CNNIQA trained on synthetic distortions); higher is better, [0, 100]."""

    lower_better = False
    score_range = (0.0, 100.0)

    def __init__(self, weights: Path | None = None):
        super().__init__(in_channels=3)
        path = weights or WEIGHTS
        state = load_state(path, "default model", "Reinstall the package, or retrain it with "
                                                  "`python -m benchmark.training.default_model`")
        self.net.load_state_dict({k: v.float() for k, v in state.items()})
        self.eval()
