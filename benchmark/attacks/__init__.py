"""Attack plugins in score space (docs/measures.md#attacks-the-score-objective): each implements one hook,
``perturb(self, model, x, *, generator=None) -> x_adv``, and never overrides ``__call__``. The base call
``attack(model, x, *, generator=None, output_8bit=False)`` (:class:`benchmark.attacks.base.Attack`) runs it, puts
the output on the 8-bit grid with the budget kept in its unit (``finish``), counts the model's passes
(``last_passes``) and hands back the scores the attack already computed of exactly the returned images
(``last_scores``).

Every module of this package is imported by :func:`benchmark.registry.load_builtin_plugins`; a plugin module
registers its class with ``@ATTACKS.register(name)``, a helper module (``base``, ``adaptive``) registers nothing.
"""
from .adaptive import DefendedMetric
from .base import Attack

__all__ = ["Attack", "DefendedMetric"]
