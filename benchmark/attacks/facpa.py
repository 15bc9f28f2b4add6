"""FACPA: Fast Adversarial CNN-based Perturbation Attack (Shumitskaya, Antsiferova, Vatolin, "Fast
Adversarial CNN-based Perturbation Attack on No-Reference Image- and Video-Quality Metrics", ICLR Tiny
Papers 2023; code: katiashh/FACPA, ``FACPA_attack_training.ipynb`` and ``FACPA_attack_inference.ipynb``),
docs/measures.md §1.

A U-Net generator ``G`` maps an image to its own perturbation, trained once to raise the score:

    min_G E_{x ~ train} −L(clip01(x + eps · tanh(G(x))))           (Adam over a training split)
    x' = clip01(x + a · eps · tanh(G(x)))                           (one forward pass at test time)

so the attack costs one generator pass per image and no gradient of the metric at test time. The
generator's output layer starts at zero, so training starts from δ = 0 as ``uap``'s does (the reference's
random initialisation starts from a noise pattern of up to ±eps, which lowers the score of some models and
which a short training may not undo; this changes only the starting point). ``G`` is the
reference's pix2pix U-Net (:class:`UNetGenerator`: 4×4 stride-2 convolutions with ``ngf·min(2^i, 8)``
channels down to 1×1, transposed convolutions up with skip connections, instance norm, LeakyReLU 0.2 down,
ReLU up, dropout 0.5 on the three innermost up-layers, tanh out), ``log2(size)`` levels deep (8 at the
reference's 256). Trained once per (metric, fit parameters, seed) on the training split disjoint from the
evaluated images (:func:`benchmark.training.trainset.uap_images`), stored in ``<run>/artifacts/`` and
reused across amplitudes and defenses. The reference applies ``G`` to the largest top-left crop whose sides
are multiples of 256 and tiles its output; here the image is padded (replicate) to a multiple of
``2^depth`` and the output cropped, which covers any size without tiling seams.

Reference defaults: ``eps = 10/255``, ``ngf = 64``, Adam ``lr = 0.001``, batch 4, 200 epochs on 256×256
crops. Defaults here: ``eps = 10/255``, ``amplitude = 1.0``, ``size = 256``, ``lr = 0.001``,
``batch_size = 4`` as the reference, but ``epochs = 3`` (not 200) and ``ngf = 16`` (not 64: 1.8 M weights
instead of 29 M at ``size = 64``), so that training takes about a minute on 2 CPU cores at ``size = 64``;
the generator is then far from converged and the attack weaker than the paper's (on a GPU, set
``ngf = 64`` and many more epochs). Ranges: ``eps`` in (0, 1],
``amplitude`` in (0, 1/eps], ``size`` within 64..1024, ``epochs`` within 1..1000, ``lr`` in (0, 1],
``batch_size`` within 1..1024, ``ngf`` within 4..128.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..params import within
from ..registry import ATTACKS
from ..store import atomic_write_json
from ..weights import save_checkpoint
from .base import Attack, Direction
from .uap import run_training

log = logging.getLogger(__name__)


class UNetGenerator(nn.Module):
    """The reference's U-Net (``UnetGenerator(3, 3, ngf, norm_type='instance', act_type='relu')``), ``depth``
    levels deep: an input side of ``2^depth`` reaches 1×1 at the bottleneck. Output in (-1, 1)."""

    def __init__(self, depth: int, ngf: int = 64):
        super().__init__()
        ch = [ngf * min(2 ** i, 8) for i in range(depth)]
        self.depth = depth
        self.down = nn.ModuleList(nn.Conv2d(3 if i == 0 else ch[i - 1], ch[i], 4, 2, 1) for i in range(depth))
        self.up = nn.ModuleList(nn.ConvTranspose2d(ch[-1] if k == 1 else 2 * ch[depth - k], ch[depth - 1 - k], 4, 2, 1)
                                for k in range(1, depth))
        self.out = nn.ConvTranspose2d(2 * ch[0], 3, 4, 2, 1)
        self.dropout = nn.Dropout(0.5)

    def zero_output(self) -> UNetGenerator:
        """Zero the output layer, so that the untrained generator outputs 0 (training then starts from δ = 0)."""
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        h = x
        for i, conv in enumerate(self.down):
            h = conv(h)
            if 0 < i < self.depth - 1:  # no norm on the first layer nor on the bottleneck
                h = F.instance_norm(h)
            if i < self.depth - 1:  # the reference's LeakyReLU is in place: its skip connections carry it too
                h = F.leaky_relu(h, 0.2)
                skips.append(h)
        for k, conv in enumerate(self.up, start=1):
            h = F.instance_norm(conv(F.relu(h)))
            if k <= 3:
                h = self.dropout(h)
            h = torch.cat([h, skips[self.depth - 1 - k]], 1)
        return torch.tanh(self.out(F.relu(h)))


def depth_for(size: int) -> int:
    """Levels of a U-Net whose bottleneck is 1×1 on a ``size``-pixel side (8 at 256)."""
    return int(math.log2(size))


@ATTACKS.register("facpa")
class FACPA(Attack):
    """FACPA (Shumitskaya et al., ICLR Tiny Papers 2023): a U-Net trained once maps each image to its perturbation."""

    threat_model = "linf"
    needs_fit = True
    strength_param = "amplitude"

    def __init__(self, eps: float = 10 / 255, amplitude: float = 1.0, size: int = 256, epochs: int = 3,
                 lr: float = 0.001, batch_size: int = 4, ngf: int = 16, direction: Direction = "increase"):
        super().__init__(direction)
        within("eps", eps, 0, 1, lo_open=True)
        within("amplitude", amplitude, 0, 1 / eps, lo_open=True)
        within("size", size, 64, 1024, integer=True)
        within("epochs", epochs, 1, 1000, integer=True)
        within("lr", lr, 0, 1, lo_open=True)
        within("batch_size", batch_size, 1, 1024, integer=True)
        within("ngf", ngf, 4, 128, integer=True)
        self.eps, self.amplitude, self.size, self.epochs, self.lr = eps, amplitude, size, epochs, lr
        self.batch_size, self.ngf = batch_size, ngf
        self.net: UNetGenerator | None = None

    @property
    def budget(self) -> float:
        return self.eps * self.amplitude

    def fit_params(self) -> dict:
        """What determines ``G`` (amplitude does not: one training serves every amplitude)."""
        return {"eps": self.eps, "size": self.size, "epochs": self.epochs, "lr": self.lr,
                "batch_size": self.batch_size, "ngf": self.ngf, "direction": self.direction}

    def generated(self, net: UNetGenerator, x: torch.Tensor) -> torch.Tensor:
        """``eps · tanh(G(x))``, ``x`` padded to a multiple of ``2^depth`` and the output cropped back."""
        m = 2 ** net.depth
        h, w = x.shape[-2:]
        xp = F.pad(x, (0, -w % m, 0, -h % m), mode="replicate")
        return self.eps * net(xp)[..., :h, :w]

    def init_state(self, device: torch.device, generator: torch.Generator) -> dict[str, Any]:
        with torch.random.fork_rng(devices=[]):  # the initial weights from the fit seed, global RNG untouched
            torch.manual_seed(int(torch.randint(2 ** 62, (1,), generator=generator)))
            net = UNetGenerator(depth_for(self.size), self.ngf).zero_output().to(device).train()
        return {"net": net, "opt": torch.optim.Adam(net.parameters(), lr=self.lr)}

    def train_step(self, model, state: dict[str, Any], xb: torch.Tensor) -> None:
        net, opt = state["net"], state["opt"]
        loss = -self.objective(model, (xb + self.generated(net, xb)).clamp(0, 1)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    def fit(self, model, *, generator: torch.Generator, artifact: Path, provenance: dict,
            progress: bool = True) -> UNetGenerator:
        """Train ``G`` (or load it from ``artifact``), checkpointing each epoch to ``artifact``.partial."""
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        self.net = UNetGenerator(depth_for(self.size), self.ngf).to(device)
        if artifact.is_file():
            self.net.load_state_dict(torch.load(artifact, map_location=device, weights_only=True)["generator"])
            log.info("facpa: loaded the trained generator from %s (no training)", artifact)
            return self.net.eval()
        from ..training.trainset import uap_images

        ids, images = uap_images(self.size)
        log.info("facpa: training on %d images of the training split, %d epoch(s), into %s", len(ids),
                 self.epochs, artifact)
        partial = artifact.with_suffix(".partial.pt")
        state = run_training(self, model, images, generator=generator, partial=partial, progress=progress)
        self.net.load_state_dict(state["net"].state_dict())
        save_checkpoint(artifact, {"generator": {k: v.cpu() for k, v in self.net.state_dict().items()}})
        atomic_write_json(artifact.with_suffix(".json"), {**provenance, **self.fit_params(),
                                                          "train_images": ids, "n_train": len(ids)})
        partial.unlink(missing_ok=True)
        return self.net.eval()

    def perturb(self, model, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.net is None:
            raise RuntimeError("FACPA.fit() must run before the attack is applied")
        net = self.net.to(x.device).eval()
        with torch.no_grad():
            return (x + self.amplitude * self.generated(net, x)).clamp(0, 1)
