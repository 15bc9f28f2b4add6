"""Seeds: every random draw of the benchmark derives from a content key through sha256, never from the time
or from Python's salted ``hash()`` (which changes from one process to the next).

:func:`digest_seed` is the one seed function: the first 8 bytes of the key's sha256, little-endian, mod 2⁶³
(a valid ``torch.Generator`` seed). :func:`seed_from` keys it by the JSON of its parts (stages, fits,
smoothing draws); the built-in photographs' distortions key it by ``"photo/kind level"`` text (the
``synthetic`` dataset's image ids, the training sets' ``"photo|kind|level"``), as they always have, so the
same images come out.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any


def digest_seed(key: str) -> int:
    """A 63-bit seed from the sha256 of the text ``key``."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") % (2**63)


def seed_from(*parts: Any) -> int:
    """A 63-bit seed from the sha256 of the parts as JSON (sorted keys; other objects as ``str``)."""
    return digest_seed(json.dumps(parts, sort_keys=True, default=str))
