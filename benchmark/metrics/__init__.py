"""Metric plugins: ``nn.Module`` from B×3×H×W images in [0,1] to B scores.

Every module of this package is imported by :func:`benchmark.registry.load_builtin_plugins`; a plugin module
registers its class with ``@METRICS.register(name)``, a helper module (``base``, ``zoo``) registers nothing.
"""
from .base import Metric

__all__ = ["Metric"]
