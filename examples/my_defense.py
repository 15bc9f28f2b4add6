"""An example defense plugin: Gaussian blur as a purifier, in one small file.

Name it in a config with ``plugins = ["my_defense.py"]`` under ``[run]`` and ``name = "blur"`` in a
``[[defenses]]`` table. The class declares its capabilities as attributes and its parameters (with
defaults) as constructor keywords; the benchmark validates the config against them.

Reference: Gaussian blur is one of the purifiers of the purification literature (e.g. Gushchin et al.,
"Adversarial purification for no-reference image-quality metrics", and the Guardians benchmark).
"""
import kornia
import torch

from benchmark.defenses.base import Defense
from benchmark.registry import DEFENSES


@DEFENSES.register("blur")
class GaussianBlur(Defense):
    """Gaussian blur (kornia); sigma in pixels, default 1.0; kernel covers ±3 sigma."""

    stochastic = False
    differentiable = True

    def __init__(self, sigma: float = 1.0):
        super().__init__()
        if sigma <= 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        self.sigma = sigma

    def forward(self, x: torch.Tensor, *, generator=None) -> torch.Tensor:
        k = 2 * max(1, round(3 * self.sigma)) + 1
        return kornia.filters.gaussian_blur2d(x, (k, k), (self.sigma, self.sigma), border_type="reflect")
