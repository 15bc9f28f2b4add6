"""Defense plugins: ``forward(x, *, generator) -> x_purified`` with capability attributes.

Every module of this package is imported by :func:`benchmark.registry.load_builtin_plugins`; a plugin module
registers its class with ``@DEFENSES.register(name)``, a helper module (``base``, ``denoiser``) registers nothing.
"""
from .base import Defense

__all__ = ["Defense"]
