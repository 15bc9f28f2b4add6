"""Attack plugins: ``__call__(model, x, *, generator) -> x_adv`` in score space (formulas.md §1)."""
from . import fgsm, pgd  # noqa: F401  (registration)
from .base import Attack

__all__ = ["Attack"]
