"""Universal adversarial perturbation for IQA (Shumitskaya, Antsiferova, Vatolin, "Universal Perturbation
Attack on Differentiable No-Reference Image- and Video-Quality Metrics", BMVC 2022), docs/measures.md §1:

    δ* = argmax_{‖δ‖∞ ≤ eps} E_{x ~ train} L(clip01(x + δ))        (Adam over a training split)
    x' = clip01(x + a · tile(δ*))                                   (at test time, amplitude a)

The training split is disjoint from every test image by construction: scikit-image's *training*
photographs (those of ``synthetic`` with ``split = "train"``; the benchmark's default test data use the
other photographs), pristine and with the six distortions at levels 1, 3, 5, at ``size``×``size``
(:func:`benchmark.training.trainset.uap_images`).
Training is done once per (metric, eps, size, epochs, lr, seed) and reused across amplitudes and
defenses: the runner stores δ* under ``<run>/artifacts/`` with its provenance, checkpoints after each
epoch, and resumes an interrupted training. The variants ``cumulative_uap`` and ``generative_uap`` (and
``facpa``'s generator) train through the same loop (:func:`run_training`), overriding its hooks.

``perturbation = "file.npy"`` applies a published universal perturbation instead of training one, such as
the MSU metrics-robustness benchmark's ``res/<attack>_<metric>_<COCO|VOC2012>.npy``: a float array of
H×W×3 (the MSU layout: RGB, channels last; 3×H×W is accepted too) on the [0, 1] image scale (MSU's are
256×256×3 within ±0.1, the generative one within ±10/255), tiled over the image as MSU's ``run_uap`` does.
``eps`` is then the file's largest |value| (an ``eps`` in the table is not used, though the manifest's resolved
parameters still list it; the attack stage records the budget ``amplitude · max|δ|`` actually applied) and
``amplitude`` scales it (MSU applies 0.2, 0.4 and 0.8).
The file is read and checked when the config is validated; a bad one is a config error naming it.

Defaults: ``eps = 10/255``, ``amplitude = 1.0`` (the paper sweeps e.g. 0.2, 0.4, 0.8), ``size = 256``,
``epochs = 5``, ``lr = 0.001``, ``batch_size = 8``. Ranges: ``eps`` in (0, 1], ``amplitude`` in (0, 1/eps]
(an L∞ budget of at most 1), ``size`` within 64..1024 (the 190 training images are held in memory),
``epochs`` within 1..1000, ``lr`` in (0, 1], ``batch_size`` within 1..1024.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import ConfigError
from ..params import MAX_IMAGE_SIDE, within
from ..registry import ATTACKS
from ..store import atomic_write_json
from ..weights import save_checkpoint
from .base import Attack, Direction

log = logging.getLogger(__name__)


def tile(delta: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Repeat a 3×s×s perturbation to cover h×w (the paper tiles, it does not resize)."""
    reps = (-(-h // delta.shape[-2]), -(-w // delta.shape[-1]))
    return delta.repeat(1, *reps)[:, :h, :w]


def load_perturbation(path: Path) -> torch.Tensor:
    """A universal perturbation file as a 3×H×W float32 tensor; a :class:`ConfigError` naming the file
    (key ``perturbation``) for anything that is not a finite float H×W×3 or 3×H×W array within [-1, 1]."""
    def bad(why: str) -> ConfigError:
        return ConfigError(f"{path}: {why}", key="perturbation")

    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:  # not .npy (pickle refused), truncated, unreadable
        raise bad(f"not a readable NumPy .npy array ({exc})") from None
    if not isinstance(arr, np.ndarray):  # an .npz archive
        raise bad("expected one array saved with numpy.save (.npy), got an archive of arrays (.npz)")
    shape = arr.shape[1:] if arr.ndim == 4 and arr.shape[0] == 1 else arr.shape
    if len(shape) != 3 or 3 not in (shape[0], shape[-1]):
        raise bad(f"expected an H×W×3 array (the MSU benchmark's layout) or 3×H×W, got shape {tuple(arr.shape)}")
    if arr.dtype.kind != "f":
        raise bad(f"expected floating-point values (a perturbation of [0, 1] images), got dtype {arr.dtype}")
    hw = shape[:2] if shape[-1] == 3 else shape[1:]
    if max(hw) > MAX_IMAGE_SIDE:
        raise bad(f"expected at most {MAX_IMAGE_SIDE} pixels a side, got {hw[0]}×{hw[1]}")
    delta = torch.from_numpy(np.array(arr, dtype=np.float32).reshape(shape))
    delta = delta.permute(2, 0, 1).contiguous() if shape[-1] == 3 else delta
    if not torch.isfinite(delta).all():
        raise bad("holds NaN or infinite values")
    peak = float(delta.abs().max())
    if peak == 0:
        raise bad("is all zeros: nothing to apply")
    if peak > 1:
        raise bad(f"values must lie within [-1, 1] (a perturbation of [0, 1] images), got max |value| = {peak:g}"
                  + (" (on the 0..255 scale? divide it by 255)" if peak > 2 else ""))
    return delta


def _state_dicts(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v.state_dict() if hasattr(v, "state_dict") else v.detach().cpu() for k, v in state.items()}


def _restore(state: dict[str, Any], saved: dict[str, Any]) -> None:
    for k, v in state.items():
        if hasattr(v, "load_state_dict"):
            v.load_state_dict(saved[k])
        else:
            with torch.no_grad():
                v.copy_(saved[k])


def run_training(attack, model, images: torch.Tensor, *, generator: torch.Generator, partial: Path,
                 progress: bool) -> dict[str, Any]:
    """``attack.epochs`` epochs over ``images`` in shuffled batches of ``attack.batch_size``, calling
    ``attack.train_step(model, state, xb)`` on the state ``attack.init_state(device, generator)`` builds
    (tensors, modules and optimizers); checkpoints the state to ``partial`` after each epoch and resumes
    from it. Returns the trained state."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    state = attack.init_state(device, generator)
    start = 0
    if partial.is_file():
        ck = torch.load(partial, map_location=device, weights_only=True)
        _restore(state, ck.get("state", ck))  # (a partial of the earlier format holds the state at its top level)
        start = ck["epoch"]
        log.info("resuming %s training at epoch %d from %s", type(attack).__name__, start, partial)
    desc = f"{attack.plugin_name} epoch {{}}/{attack.epochs}"
    # the global RNG (a generator's dropout) seeded from the fit seed, without drawing from ``generator``
    seed = int(torch.randint(2 ** 62, (1,), generator=torch.Generator().manual_seed(generator.initial_seed())))
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for epoch in range(start, attack.epochs):
            order = torch.randperm(len(images), generator=generator)
            for i in tqdm(range(0, len(images), attack.batch_size), desc=desc.format(epoch + 1), leave=False,
                          disable=not progress):
                with torch.enable_grad():
                    attack.train_step(model, state, images[order[i:i + attack.batch_size]].to(device))
            save_checkpoint(partial, {"state": _state_dicts(state), "epoch": epoch + 1})
    return state


@ATTACKS.register("uap")
class UAP(Attack):
    """Universal perturbation (Shumitskaya et al., BMVC 2022): trained once on a disjoint split, applied with amplitude."""

    threat_model = "universal"
    budget_unit = "linf"  # a · max|δ|: kept on the 8-bit grid by finish()
    needs_fit = True
    strength_param = "amplitude"
    max_lr = 1.0  # an Adam step: δ lives in [-eps, eps], a larger step is meaningless

    def __init__(self, eps: float = 10 / 255, amplitude: float = 1.0, size: int = 256, epochs: int = 5,
                 lr: float = 0.001, batch_size: int = 8, direction: Direction = "increase",
                 perturbation: Path | None = None):
        super().__init__(direction)
        within("eps", eps, 0, 1, lo_open=True)
        within("size", size, 64, 1024, integer=True)  # the training set is held in memory: 2.4 GB at 1024
        within("epochs", epochs, 1, 1000, integer=True)
        within("lr", lr, 0, self.max_lr, lo_open=True)
        within("batch_size", batch_size, 1, 1024, integer=True)
        self.delta: torch.Tensor | None = None
        self.perturbation = perturbation
        if perturbation is not None:  # a published δ: nothing to train, its largest |value| is eps
            self.delta = load_perturbation(Path(perturbation))
            eps = float(self.delta.abs().max())
            self.needs_fit = False
        within("amplitude", amplitude, 0, 1 / eps, lo_open=True)  # the budget amplitude · eps is at most 1
        self.eps, self.amplitude, self.size, self.epochs, self.lr = eps, amplitude, size, epochs, lr
        self.batch_size = batch_size

    @property
    def budget(self) -> float:
        return self.eps * self.amplitude

    def fit_params(self) -> dict:
        """What determines δ* (amplitude does not: one training serves every amplitude)."""
        return {"eps": self.eps, "size": self.size, "epochs": self.epochs, "lr": self.lr,
                "batch_size": self.batch_size, "direction": self.direction}

    # -- training hooks (the variants override these) -------------------------------------------
    def init_state(self, device: torch.device, generator: torch.Generator) -> dict[str, Any]:
        delta = torch.zeros(3, self.size, self.size, device=device, requires_grad=True)
        return {"delta": delta, "opt": torch.optim.Adam([delta], lr=self.lr)}

    def train_step(self, model, state: dict[str, Any], xb: torch.Tensor) -> None:
        """One Adam step on ``-mean L(clip01(x + δ))``, then δ clipped to [-eps, eps]."""
        delta, opt = state["delta"], state["opt"]
        loss = -self.objective(model, (xb + delta).clamp(0, 1)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            delta.clamp_(-self.eps, self.eps)

    def fitted_delta(self, state: dict[str, Any]) -> torch.Tensor:
        return state["delta"]

    # --------------------------------------------------------------------------------------------
    def fit(self, model, *, generator: torch.Generator, artifact: Path, provenance: dict,
            progress: bool = True) -> torch.Tensor:
        """Train δ* (or load it from ``artifact``), checkpointing each epoch to ``artifact``.partial."""
        if self.perturbation is not None:
            return self.delta
        if artifact.is_file():
            self.delta = torch.load(artifact, map_location="cpu", weights_only=True)["delta"]
            log.info("%s: loaded the trained perturbation from %s (no training)", self.plugin_name, artifact)
            return self.delta
        from ..training.trainset import uap_images

        ids, images = uap_images(self.size)
        log.info("%s: training on %d images of the training split, %d epoch(s), into %s", self.plugin_name,
                 len(ids), self.epochs, artifact)
        partial = artifact.with_suffix(".partial.pt")
        state = run_training(self, model, images, generator=generator, partial=partial, progress=progress)
        with torch.no_grad():
            self.delta = self.fitted_delta(state).detach().cpu()
        save_checkpoint(artifact, {"delta": self.delta})
        atomic_write_json(artifact.with_suffix(".json"), {**provenance, **self.fit_params(),
                                                          "train_images": ids, "n_train": len(ids)})
        partial.unlink(missing_ok=True)
        return self.delta

    def perturb(self, model, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.delta is None:
            raise RuntimeError(f"{type(self).__name__}.fit() must run before the attack is applied")
        d = tile(self.delta.to(x.device, x.dtype), x.shape[-2], x.shape[-1])
        return (x + self.amplitude * d).clamp(0, 1)
