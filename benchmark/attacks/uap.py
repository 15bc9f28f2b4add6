"""Universal adversarial perturbation for IQA (Shumitskaya, Antsiferova, Vatolin, "Universal Perturbation
Attack on Differentiable No-Reference Image- and Video-Quality Metrics", BMVC 2022), formulas.md §1:

    δ* = argmax_{‖δ‖∞ ≤ eps} E_{x ~ train} L(clip01(x + δ))        (Adam over a training split)
    x' = clip01(x + a · tile(δ*))                                   (at test time, amplitude a)

The training split is disjoint from every test image by construction: scikit-image's *training*
photographs (those of ``synthetic`` with ``split = "train"``; the benchmark's default test data use the
other photographs), pristine and with the six distortions at levels 1, 3, 5, at ``size``×``size``
(:func:`benchmark.training.trainset.uap_images`).
Training is done once per (metric, eps, size, epochs, lr, seed) and reused across amplitudes and
defenses: the runner stores δ* under ``<run>/artifacts/`` with its provenance, checkpoints after each
epoch, and resumes an interrupted training.

Defaults: ``eps = 10/255``, ``amplitude = 1.0`` (the paper sweeps e.g. 0.2, 0.4, 0.8), ``size = 256``,
``epochs = 5``, ``lr = 0.001``, ``batch_size = 8``. Ranges: ``eps`` in (0, 1], ``amplitude`` in (0, 1/eps]
(an L∞ budget of at most 1), ``size`` within 64..1024 (the 190 training images are held in memory),
``epochs`` within 1..1000, ``lr`` in (0, 1], ``batch_size`` within 1..1024.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..params import within
from ..registry import ATTACKS
from ..store import atomic_write_json
from ..weights import save_checkpoint
from .base import Attack, Direction

log = logging.getLogger(__name__)


def tile(delta: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Repeat a 3×s×s perturbation to cover h×w (the paper tiles, it does not resize)."""
    reps = (-(-h // delta.shape[-2]), -(-w // delta.shape[-1]))
    return delta.repeat(1, *reps)[:, :h, :w]


@ATTACKS.register("uap")
class UAP(Attack):
    """Universal perturbation (Shumitskaya et al., BMVC 2022): trained once on a disjoint split, applied with amplitude."""

    threat_model = "universal"
    needs_fit = True
    strength_param = "amplitude"

    def __init__(self, eps: float = 10 / 255, amplitude: float = 1.0, size: int = 256, epochs: int = 5,
                 lr: float = 0.001, batch_size: int = 8, direction: Direction = "increase"):
        super().__init__(direction)
        within("eps", eps, 0, 1, lo_open=True)
        within("amplitude", amplitude, 0, 1 / eps, lo_open=True)  # the budget amplitude · eps is at most 1
        within("size", size, 64, 1024, integer=True)  # the training set is held in memory: 2.4 GB at 1024
        within("epochs", epochs, 1, 1000, integer=True)
        within("lr", lr, 0, 1, lo_open=True)  # δ lives in [-eps, eps]: a larger step is meaningless
        within("batch_size", batch_size, 1, 1024, integer=True)
        self.eps, self.amplitude, self.size, self.epochs, self.lr = eps, amplitude, size, epochs, lr
        self.batch_size = batch_size
        self.delta: torch.Tensor | None = None

    @property
    def budget(self) -> float:
        return self.eps * self.amplitude

    def fit_params(self) -> dict:
        """What determines δ* (amplitude does not: one training serves every amplitude)."""
        return {"eps": self.eps, "size": self.size, "epochs": self.epochs, "lr": self.lr,
                "batch_size": self.batch_size, "direction": self.direction}

    def fit(self, model, *, generator: torch.Generator, artifact: Path, provenance: dict,
            progress: bool = True) -> torch.Tensor:
        """Train δ* (or load it from ``artifact``), checkpointing each epoch to ``artifact``.partial."""
        if artifact.is_file():
            self.delta = torch.load(artifact, map_location="cpu", weights_only=True)["delta"]
            return self.delta
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        from ..training.trainset import uap_images

        ids, images = uap_images(self.size)
        partial = artifact.with_suffix(".partial.pt")
        delta = torch.zeros(3, self.size, self.size, device=device)
        opt_state, start = None, 0
        if partial.is_file():
            ck = torch.load(partial, map_location="cpu", weights_only=True)
            delta, opt_state, start = ck["delta"].to(device), ck["opt"], ck["epoch"]
            log.info("resuming UAP training at epoch %d from %s", start, partial)
        delta.requires_grad_(True)
        opt = torch.optim.Adam([delta], lr=self.lr)
        if opt_state is not None:
            opt.load_state_dict(opt_state)
        for epoch in range(start, self.epochs):
            order = torch.randperm(len(images), generator=generator)
            for i in tqdm(range(0, len(images), self.batch_size), desc=f"UAP epoch {epoch + 1}/{self.epochs}",
                          leave=False, disable=not progress):
                xb = images[order[i:i + self.batch_size]].to(device)
                with torch.enable_grad():
                    loss = -self.objective(model, (xb + delta).clamp(0, 1)).mean()
                    opt.zero_grad()
                    loss.backward()
                opt.step()
                with torch.no_grad():
                    delta.clamp_(-self.eps, self.eps)
            save_checkpoint(partial, {"delta": delta.detach().cpu(), "opt": opt.state_dict(), "epoch": epoch + 1})
        self.delta = delta.detach().cpu()
        save_checkpoint(artifact, {"delta": self.delta})
        atomic_write_json(artifact.with_suffix(".json"), {**provenance, **self.fit_params(),
                                                          "train_images": ids, "n_train": len(ids)})
        partial.unlink(missing_ok=True)
        return self.delta

    def __call__(self, model, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.delta is None:
            raise RuntimeError("UAP.fit() must run before the attack is applied")
        d = tile(self.delta.to(x.device), x.shape[-2], x.shape[-1])
        return (x.detach() + self.amplitude * d).clamp(0, 1)
