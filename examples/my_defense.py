"""An example defense plugin in one small file: pixel deflection.

Prakash, Moran, Garber, DiLillo, Storer, "Deflecting Adversarial Attacks with Pixel Deflection",
CVPR 2018: replace ``deflections`` randomly chosen pixels by a random pixel of their ``window``-sized
neighbourhood (the paper follows with a wavelet denoiser, left out here to keep the example short).
Defaults: ``deflections = 200``, ``window = 10``.

Name it in a config with ``plugins = ["my_defense.py"]`` under ``[run]`` and ``name = "pixel_deflection"``
in a ``[[defenses]]`` table. Capabilities are class attributes; parameters (with defaults) are the
constructor's typed keywords, which the benchmark validates the config against.
"""
import torch

from benchmark.defenses.base import Defense
from benchmark.registry import DEFENSES


@DEFENSES.register("pixel_deflection")
class PixelDeflection(Defense):
    """Pixel deflection (Prakash et al., CVPR 2018) without the wavelet step; 200 deflections, window 10."""

    stochastic = True        # draws from the generator: the runner gives D(x) and D(x') the same seed
    differentiable = False   # BPDA backpropagates through surrogate() (the identity, from Defense)

    def __init__(self, deflections: int = 200, window: int = 10):
        super().__init__()
        if deflections < 1 or window < 1:
            raise ValueError("deflections and window must be positive")
        self.deflections, self.window = deflections, window

    def forward(self, x: torch.Tensor, *, generator=None) -> torch.Tensor:
        b, _, h, w = x.shape
        out = x.clone()
        for i in range(b):
            r, c = (torch.randint(0, n, (self.deflections,), generator=generator) for n in (h, w))
            dr, dc = (torch.randint(-self.window, self.window + 1, (self.deflections,), generator=generator)
                      for _ in range(2))
            out[i, :, r, c] = x[i, :, (r + dr).clamp(0, h - 1), (c + dc).clamp(0, w - 1)]
        return out
