"""Attack plugins: ``__call__(model, x, *, generator) -> x_adv`` in score space (formulas.md §1)."""
from . import fgsm, korhonen, madc, mifgsm, pgd, square, torchattacks_adapter, uap  # noqa: F401  (registration)
from .adaptive import DefendedMetric
from .base import Attack

__all__ = ["Attack", "DefendedMetric"]
