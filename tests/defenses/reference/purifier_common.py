"""Shared pieces of the learned-purifier tests (fcn, mprnet, realesrgan, disco): deterministic weights for a
state-dict layout, and the command-line check that a missing weights file stops ``validate`` with exit 2."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import torch

REFERENCE = Path(__file__).resolve().parent


def import_reference(name: str):
    """A module of this folder (the official architecture copies), imported by file name."""
    if str(REFERENCE) not in sys.path:
        sys.path.insert(0, str(REFERENCE))
    return __import__(name)


def seeded_state(shapes: dict[str, tuple[int, ...]], seed: int = 0, gain: float = 1.0) -> dict[str, torch.Tensor]:
    """Weights for a layout, the same on every machine: for each key in sorted order, N(0, 1) draws from a
    seeded CPU generator scaled by ``gain/sqrt(fan_in)`` (matrices and kernels) or by 0.1 (biases); one-element
    tensors (a shared PReLU slope) are 0.25, so a parameter listed under several keys gets one value."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key in sorted(shapes):
        shape = tuple(shapes[key])
        if math.prod(shape) == 1:
            state[key] = torch.full(shape, 0.25)
            continue
        draw = torch.randn(shape, generator=gen)
        state[key] = draw * (gain / math.sqrt(math.prod(shape[1:])) if len(shape) > 1 else 0.1)
    return state


def shapes_of(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def validate_exit(tmp_path: Path, capsys, defense: str, weights: Path, **params) -> tuple[int, str]:
    """``validate`` of a one-cell matrix whose defense names ``weights``: (exit code, stderr)."""
    from benchmark.cli import main

    extra = "".join(f"{k} = {v!r}\n" for k, v in params.items())
    cfg = tmp_path / "matrix.toml"
    cfg.write_text(f"""
[[datasets]]
name = "synthetic"
[[metrics]]
name = "default"
[[attacks]]
name = "fgsm"
[[defenses]]
name = "{defense}"
weights = "{weights}"
{extra}""")
    code = main(["validate", str(cfg)])
    return code, capsys.readouterr().err


def one_thread():
    """Generator for a module-scoped autouse fixture: one intra-op thread while the module runs (many small
    convolutions on a loaded machine are several times slower with two spinning threads), restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
