"""Defense plugins: ``forward(x, *, generator) -> x_purified`` with capability attributes."""
from . import (  # noqa: F401  (registration)
    cohen_smoothing, denoised_smoothing, flip, identity, jpeg, median, median_smoothing, random_crop)
from .base import Defense

__all__ = ["Defense"]
