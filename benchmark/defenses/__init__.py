"""Defense plugins: ``forward(x, *, generator) -> x_purified`` with capability attributes."""
from . import flip, identity, jpeg, median, random_crop  # noqa: F401  (registration)
from .base import Defense

__all__ = ["Defense"]
