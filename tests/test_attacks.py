"""Not tests: kept only for the test modules outside tests/attacks/ that still import two helpers from here
(``from test_attacks import batch, frozen``: test_certify, test_defenses, test_diffpure, test_diffusion_smoothing,
test_purifiers, test_torch_model, test_train_denoiser). The helpers live in :mod:`helpers.images`; the attack
tests that were here live in tests/attacks/, one file per attack (test_fgsm.py, test_pgd.py, ...). Delete this
module once those imports read ``from helpers.images import batch, frozen``."""
from __future__ import annotations

from helpers.images import batch, frozen  # noqa: F401  (re-exported for the importers above)
