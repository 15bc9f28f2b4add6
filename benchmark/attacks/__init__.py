"""Attack plugins: ``__call__(model, x, *, generator) -> x_adv`` in score space (docs/measures.md#attacks-the-score-objective).

Every module of this package is imported by :func:`benchmark.registry.load_builtin_plugins`; a plugin module
registers its class with ``@ATTACKS.register(name)``, a helper module (``base``, ``adaptive``) registers nothing.
"""
from .adaptive import DefendedMetric
from .base import Attack

__all__ = ["Attack", "DefendedMetric"]
