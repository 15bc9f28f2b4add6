"""Metric plugins: ``nn.Module`` from B×3×H×W images in [0,1] to B scores."""
from . import cnniqa, default_model, pyiqa_adapter, torch_model  # noqa: F401  (registration)
from . import koncept512, linearity, metaiqa, spaq  # noqa: F401  (registration)
from .base import Metric

__all__ = ["Metric"]
