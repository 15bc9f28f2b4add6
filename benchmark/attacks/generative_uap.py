"""Generative UAP (Shumitskaya, Antsiferova, Vatolin, "Towards adversarial robustness verification of
no-reference image- and video-quality metrics", CVIU 240, 2024; code: katiashh/fast-attacks-on-NR-metrics,
``Generative_UAP_training.ipynb``, and the MSU metrics-robustness benchmark's
``robustness_benchmark/methods/generative-uap/train.py``), docs/measures.md §1.

A universal perturbation produced by a generator from one fixed noise input ``z``:

    min_G E_{x ~ train} −L(clip01(x + eps · tanh(G(z))))          (Adam on G's weights)
    δ* = eps · tanh(G(z)),  x' = clip01(x + a · tile(δ*))          (at test time, as ``uap``)

``G`` is the reference's U-Net (:class:`benchmark.attacks.facpa.UNetGenerator`, instance norm, ReLU),
``log2(size)`` levels deep. The reference draws ``z ~ U(0, 1)`` and, after the first step, clips it to
``[-eps, eps]`` in place (it is not trained), so from then on ``z = min(U(0, 1), eps)``; here ``z`` is that
from the start. As in ``facpa``, the output layer starts at zero (δ₀ = 0, as ``uap``'s), not at the random
pattern of the reference's initialisation. δ* is taken with ``G`` in eval mode (the MSU code keeps dropout
on for its final pass), and dropout during training draws from the global RNG seeded by the fit seed.
Trained once per (metric, fit parameters, seed) on the training split disjoint from the evaluated images
(:func:`benchmark.training.trainset.uap_images`); only δ* is stored in ``<run>/artifacts/`` and reused across
amplitudes and defenses. ``perturbation = "file.npy"`` applies a published one instead (the MSU
benchmark's ``res/generative-uap_maniqa_{COCO,VOC2012}.npy``, within ±10/255).

Reference defaults: ``eps = 10/255``, ``ngf = 64``, Adam ``lr = 0.001``; the authors' notebook trains 10
epochs at batch 4, the MSU benchmark 1 epoch at batch 8 on COCO or VOC2012 and applies amplitudes 0.2,
0.4, 0.8. Defaults here: ``eps = 10/255``, ``amplitude = 1.0``, ``size = 256``, ``lr = 0.001``,
``batch_size = 8`` as the reference; ``epochs = 3`` (not 1: on the 190 training images here one epoch is 24
steps, too few for the generator to converge; MSU's single epoch over COCO is thousands of steps) and
``ngf = 32`` (not 64: at 64 the generator has 29 M weights at ``size = 64``, 54 M at 256, and a step costs
seconds on a CPU; at 32 training takes under a minute on 2 CPU cores at ``size = 64``; on a GPU set 64).
Ranges: as ``uap``, and ``ngf`` within 4..128.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..params import within
from ..registry import ATTACKS
from .base import Direction
from .facpa import UNetGenerator, depth_for
from .uap import UAP


@ATTACKS.register("generative_uap")
class GenerativeUAP(UAP):
    """Generative UAP (Shumitskaya et al., CVIU 2024): a U-Net maps fixed noise to a universal perturbation."""

    def __init__(self, eps: float = 10 / 255, amplitude: float = 1.0, size: int = 256, epochs: int = 3,
                 lr: float = 0.001, batch_size: int = 8, ngf: int = 32, direction: Direction = "increase",
                 perturbation: Path | None = None):
        within("ngf", ngf, 4, 128, integer=True)
        super().__init__(eps=eps, amplitude=amplitude, size=size, epochs=epochs, lr=lr, batch_size=batch_size,
                         direction=direction, perturbation=perturbation)
        self.ngf = ngf

    def fit_params(self) -> dict:
        return {**super().fit_params(), "ngf": self.ngf}

    def init_state(self, device: torch.device, generator: torch.Generator) -> dict[str, Any]:
        depth = depth_for(self.size)
        side = -(-self.size // 2 ** depth) * 2 ** depth  # the generator's side: a multiple of 2^depth
        z = torch.rand(1, 3, side, side, generator=generator).clamp(max=self.eps).to(device)
        with torch.random.fork_rng(devices=[]):  # the initial weights from the fit seed, global RNG untouched
            torch.manual_seed(int(torch.randint(2 ** 62, (1,), generator=generator)))
            net = UNetGenerator(depth, self.ngf).zero_output().to(device).train()
        return {"net": net, "opt": torch.optim.Adam(net.parameters(), lr=self.lr), "z": z}

    def generate(self, state: dict[str, Any]) -> torch.Tensor:
        return self.eps * state["net"](state["z"])[0, :, :self.size, :self.size]

    def train_step(self, model, state: dict[str, Any], xb: torch.Tensor) -> None:
        loss = -self.objective(model, (xb + self.generate(state)).clamp(0, 1)).mean()
        state["opt"].zero_grad()
        loss.backward()
        state["opt"].step()

    def fitted_delta(self, state: dict[str, Any]) -> torch.Tensor:
        state["net"].eval()
        return self.generate(state).clamp(-self.eps, self.eps)
