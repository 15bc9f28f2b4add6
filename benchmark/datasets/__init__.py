"""Dataset plugins: each yields ``Sample(image_id, uint8 image, mos)``."""
from . import clive, csiq, folder, kadid, koniq, live2, spaq, synthetic, tid2013  # noqa: F401  (registration)
from .base import Dataset, Sample

__all__ = ["Dataset", "Sample"]
