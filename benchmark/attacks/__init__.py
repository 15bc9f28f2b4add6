"""Attack plugins: ``__call__(model, x, *, generator) -> x_adv`` in score space (docs/measures.md#attacks-the-score-objective)."""
from . import fgsm, korhonen, madc, mifgsm, pgd, square, torchattacks_adapter, uap  # noqa: F401  (registration)
from . import nes, onepixel, parsimonious, patch_rs  # noqa: F401  (registration: score-only query attacks)
from . import cumulative_uap, facpa, generative_uap, ioi  # noqa: F401  (registration: learned and universal)
from . import advcf, amifgsm, ssah, stadv, zhang  # noqa: F401  (registration: gradient, perceptual, colour, flow)
from .adaptive import DefendedMetric
from .base import Attack

__all__ = ["Attack", "DefendedMetric"]
