"""Dataset plugins: each yields ``Sample(image_id, uint8 image, mos)``.

Every module of this package is imported by :func:`benchmark.registry.load_builtin_plugins`; a plugin module
registers its class with ``@DATASETS.register(name)``, a helper module (``base``, ``table``) registers nothing.
"""
from .base import Dataset, Sample

__all__ = ["Dataset", "Sample"]
