"""Model-pass accounting: forward and backward passes of the metric per stage, against the minimum.

A forward hook on the metric counts, while a stage runs (``counting()``), the images it scores
(``forward``), the images whose score a gradient flowed back through (``backward``), and the images
scored without a gradient that this stage had already scored (``repeat``: bit-identical input, found
by an exact integer fingerprint; e.g. the runner re-scoring the image an attack's last step already
scored). The minimum a stage needs is its forward passes less its repeats, and none at all for a
defense stage of a ``baseline`` defense (``D(x) = x``: the clean and attack stages scored those
images); every backward pass is needed. ``write_passes`` puts each stage's counts, the minimum and
their ratio into ``<run>/passes.json``. Counting happens in whatever process runs the stage, so both
executors record the same numbers.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch

from .store import RunStore, atomic_write_json

_CHUNK = 32  # images fingerprinted at once (bounds the int64 copy)
_weights: dict[tuple[int, str], torch.Tensor] = {}  # one entry: the last (size, device)


@dataclass
class StagePasses:
    forward: int = 0
    backward: int = 0
    repeat: int = 0
    seen: set[int] = field(default_factory=set, repr=False)

    def as_dict(self) -> dict[str, int]:
        return {k: v for k, v in asdict(self).items() if k != "seen"}


_current: StagePasses | None = None


@contextmanager
def counting() -> Iterator[StagePasses]:
    """Count the metric's passes until the block ends (a stage)."""
    global _current
    previous, _current = _current, StagePasses()
    try:
        yield _current
    finally:
        _current = previous


def instrument(metric: torch.nn.Module) -> torch.nn.Module:
    """Attach the counting hook to a built metric (once)."""
    if getattr(metric, "_pass_hook", None) is None:
        metric._pass_hook = metric.register_forward_hook(_on_forward)
    return metric


def fingerprints(x: torch.Tensor) -> list[int]:
    """One exact 64-bit fingerprint per image: its float32 bits dotted with fixed random integers (mod 2^64;
    integer sums do not depend on the order of summation, so equal images always agree)."""
    flat = x.detach().reshape(x.shape[0], -1).float().contiguous()
    k = (flat.shape[1], str(flat.device))
    if k not in _weights:
        _weights.clear()
        g = torch.Generator().manual_seed(flat.shape[1])
        _weights[k] = torch.randint(1, 2**62, (flat.shape[1],), generator=g, dtype=torch.int64).to(flat.device)
    out: list[int] = []
    for chunk in flat.split(_CHUNK):
        out += (chunk.view(torch.int32).long() * _weights[k]).sum(1).tolist()
    return out


def _on_forward(module, args, output) -> None:
    c = _current
    if c is None or not args or not torch.is_tensor(args[0]) or args[0].dim() == 0:
        return
    n = args[0].shape[0]
    c.forward += n
    fps = fingerprints(args[0])
    grad = torch.is_tensor(output) and output.requires_grad
    if grad:
        output.register_hook(partial(_on_backward, c, n))
    else:
        c.repeat += sum(fp in c.seen for fp in fps)
    c.seen.update(fps)


def _on_backward(c: StagePasses, n: int, grad: torch.Tensor) -> None:
    c.backward += n


def write_passes(run_dir: Path, cells: list) -> dict[str, Any]:
    """``<run>/passes.json``: each stored stage's passes next to its minimum, and totals per stage kind."""
    from .runner import STAGES, stage_graph

    store, rows = RunStore(run_dir), []
    for st in stage_graph(cells, "cpu").values():
        p = store.load(st.kind, st.key).get("model_passes") if store.has(st.kind, st.key) else None
        if p is None:  # not run, failed, or stored before passes were counted
            continue
        baseline = st.kind.startswith("def_") and bool(st.cell.defense.cls.baseline)
        rows.append({"stage": st.kind, "key": st.key, **st.cell.labels(), **p, "min_forward": 0 if baseline else
                     p["forward"] - p["repeat"], "min_backward": p["backward"]})
    totals: dict[str, dict[str, float]] = {}
    for kind in (*STAGES, "all"):
        sel = [r for r in rows if kind in ("all", r["stage"])]
        t = {k: sum(r[k] for r in sel) for k in ("forward", "backward", "min_forward", "min_backward")}
        t["forward_ratio"] = t["forward"] / t["min_forward"] if t["min_forward"] else None
        t["backward_ratio"] = t["backward"] / t["min_backward"] if t["min_backward"] else None
        totals[kind] = {"stages": len(sel), **t}
    out = {"unit": "images through the metric", "totals": totals, "stages": rows}
    atomic_write_json(Path(run_dir) / "passes.json", out)
    return out
