"""Metric plugins: ``nn.Module`` from B×3×H×W images in [0,1] to B scores."""
from . import cnniqa, default_model, pyiqa_adapter  # noqa: F401  (registration)
from .base import Metric

__all__ = ["Metric"]
