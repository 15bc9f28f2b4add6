"""LPIPS (Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric", CVPR 2018)
between image pairs, through the ``lpips`` package (optional extra ``perceptual``).

The linear layers ship inside the package; the AlexNet backbone comes from torchvision's weights cache
(``$TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth``). When it is missing and cannot be downloaded,
:class:`MissingWeightsError` names the file instead of a long network retry.
"""
from __future__ import annotations

import functools

import torch

from .errors import MissingWeightsError


@functools.lru_cache(maxsize=None)
def lpips_model(device: str = "cpu", download: bool = False):
    try:
        import lpips
    except ImportError:
        raise MissingWeightsError("LPIPS", "the lpips package", "pip install -e \".[perceptual]\"") from None
    from .weights import weights_guard

    with weights_guard("lpips (AlexNet backbone)", download):
        model = lpips.LPIPS(net="alex", verbose=False)
    return model.eval().to(device)


@torch.no_grad()
def lpips_distance(a: torch.Tensor, b: torch.Tensor, download: bool = False) -> torch.Tensor:
    """B LPIPS distances of B×3×H×W images in [0,1] (lower: more similar)."""
    model = lpips_model(str(a.device), download)
    return model(a * 2 - 1, b * 2 - 1, normalize=False).flatten().cpu()
