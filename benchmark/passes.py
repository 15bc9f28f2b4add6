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

The hook costs little: fingerprints are computed where the images are (the GPU on a GPU run) and kept
there; they are brought to the CPU and compared once per ``_RESOLVE_EVERY`` forward passes and when the
stage's counts are read, never once per attack step (no device synchronisation inside an attack's loop).
"""
from __future__ import annotations

import json
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch

from .store import RunStore, atomic_write_json

_CHUNK = 1 << 22  # pixel values fingerprinted at once (bounds the int64 product: 32 MiB)
_READ = 1 << 16  # bytes of a stage record read at a time while looking for its passes
_MEMBER = b'\n "model_passes": {'
_RESOLVE_EVERY = 256  # forward passes whose fingerprints wait on the device before one transfer
_weights: dict[tuple[int, str], torch.Tensor] = {}  # one entry: the last (size, device)


@dataclass
class StagePasses:
    forward: int = 0
    backward: int = 0
    defense: int = 0    # images through the defense's forward
    decodes: int = 0    # stored attacked images decoded
    _repeat: int = field(default=0, repr=False)
    _seen: set[int] = field(default_factory=set, repr=False)
    # per forward pass, in order: its images' fingerprints (on the metric's device) and whether it had a gradient
    _pending: list[tuple[torch.Tensor, bool]] = field(default_factory=list, repr=False)

    def add(self, fps: torch.Tensor, grad: bool) -> None:
        self._pending.append((fps, grad))
        if len(self._pending) >= _RESOLVE_EVERY:
            self._resolve()

    def _resolve(self) -> None:
        """Compare the pending fingerprints in order: a pass without gradient repeats the images any earlier
        pass of the stage scored (not those of its own batch). One transfer for all of them."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        flat = torch.cat([fps.to(pending[0][0].device) for fps, _ in pending]).tolist()
        i = 0
        for fps, grad in pending:
            batch = flat[i:i + len(fps)]
            i += len(batch)
            if not grad:
                self._repeat += sum(fp in self._seen for fp in batch)
            self._seen.update(batch)

    @property
    def repeat(self) -> int:
        self._resolve()
        return self._repeat

    def as_dict(self) -> dict[str, int]:
        return {"forward": self.forward, "backward": self.backward, "repeat": self.repeat, "defense": self.defense,
                "decodes": self.decodes}


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


_instrumented: "weakref.WeakSet[torch.nn.Module]" = weakref.WeakSet()   # metrics that carry the counting hook


def instrument(metric: torch.nn.Module) -> torch.nn.Module:
    """Attach the counting hook to a built metric (once)."""
    if metric not in _instrumented:
        metric.register_forward_hook(_on_forward)
        _instrumented.add(metric)
    return metric


def instrument_defense(defense: torch.nn.Module) -> torch.nn.Module:
    """Attach the hook that counts the images a built defense's ``forward`` purifies (once)."""
    if defense not in _instrumented:
        defense.register_forward_hook(_on_defense)
        _instrumented.add(defense)
    return defense


def _on_defense(module, args, output) -> None:
    if _current is not None and args and torch.is_tensor(args[0]) and args[0].dim() == 4:
        _current.defense += args[0].shape[0]


def count_decode(n: int = 1) -> None:
    """A stage decoded ``n`` stored images."""
    if _current is not None:
        _current.decodes += n


def fingerprint(x: torch.Tensor) -> torch.Tensor:
    """One exact 64-bit fingerprint per image, an int64 tensor on ``x``'s device (no synchronisation): its
    float32 bits dotted with fixed random integers (mod 2^64; integer sums do not depend on the order of
    summation, so equal images always agree)."""
    flat = x.detach().reshape(x.shape[0], -1).float().contiguous()
    k = (flat.shape[1], str(flat.device))
    if k not in _weights:
        _weights.clear()
        g = torch.Generator().manual_seed(flat.shape[1])
        _weights[k] = torch.randint(1, 2**62, (flat.shape[1],), generator=g, dtype=torch.int64).to(flat.device)
    parts = [(chunk.view(torch.int32) * _weights[k]).sum(1) for chunk in flat.split(max(1, _CHUNK // flat.shape[1]))]
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def _on_forward(module, args, output) -> None:
    c = _current
    if c is None or not args or not torch.is_tensor(args[0]) or args[0].dim() == 0:
        return
    n = args[0].shape[0]
    c.forward += n
    grad = torch.is_tensor(output) and output.requires_grad
    if grad:
        output.register_hook(partial(_on_backward, c, n))
    c.add(fingerprint(args[0]), grad)


def _on_backward(c: StagePasses, n: int, grad: torch.Tensor) -> None:
    c.backward += n


def stored_passes(path: Path) -> dict[str, int] | None:
    """The ``model_passes`` member of a stored stage record (None: no record, or none in it), reading the
    file once and only up to that member: the store writes records with sorted keys and one space of indent
    per level, so the member starts a line `` "model_passes": {`` and comes before the per-image
    ``records``. A record written otherwise is parsed whole."""
    if not Path(path).is_file():  # not run, or failed
        return None
    buf, at = bytearray(), -1
    with open(path, "rb") as fh:
        while chunk := fh.read(_READ):
            buf += chunk
            if at < 0:
                at = buf.find(_MEMBER, max(0, len(buf) - len(chunk) - len(_MEMBER)))
            end = buf.find(b"}", at) if at >= 0 else -1
            if end >= 0:
                try:
                    return json.loads(buf[at + len(_MEMBER) - 1:end + 1])
                except ValueError:  # not the flat object of counts the runner writes: parse the record whole
                    buf += fh.read()
                    break
    return json.loads(buf).get("model_passes")


def write_passes(run_dir: Path, stages, kinds: tuple[str, ...]) -> dict[str, Any]:
    """``<run>/passes.json``: each stored stage's passes next to its minimum, and totals per stage kind.

    ``stages``: the run's stage graph (:func:`benchmark.stages.graph.stage_graph`), ``kinds`` its stage kinds.
    Counted per stage: images through the metric (``forward``, ``backward``, ``repeat``), through the defense's
    forward (``defense``) and stored attacked images decoded (``decodes``). The minimum forward passes are the
    stage's forward passes less its repeats (none for a defense stage of a ``baseline`` defense); the minimum
    defense passes are one per image for ``def_quality`` (D(x), shared by every metric) and ``def_adv`` (D(x')),
    none for ``def_clean``, which scores the stored D(x), and none for ``strip``, whose purification of the picked
    image's batch for the report is counted as the report's extra work; the minimum decodes are one per image of
    each attack for all the defenses that read it."""
    store, rows, first_read = RunStore(run_dir), [], set()
    for st in stages:
        p = stored_passes(store.stage_path(st.kind, st.key))
        if p is None:  # not run, failed, or stored before passes were counted
            continue
        baseline = st.kind.startswith("def_") and bool(st.cell.defense.cls.baseline)
        n = p.get("images", 0)
        reads = st.deps.get("attack") if st.kind == "def_adv" else None
        min_decodes = n if reads is not None and reads not in first_read else 0
        if reads is not None:
            first_read.add(reads)
        rows.append({"stage": st.kind, "key": st.key, **st.cell.labels(), "defense_passes": p.get("defense", 0),
                     **{k: v for k, v in p.items() if k != "defense"},
                     "min_forward": 0 if baseline else p["forward"] - p["repeat"], "min_backward": p["backward"],
                     "min_defense": p.get("defense", 0) if st.kind not in ("def_clean", "strip") else 0,
                     "min_decodes": min_decodes})
    totals: dict[str, dict[str, float]] = {}
    counted = ("forward", "backward", "defense_passes", "decodes", "min_forward", "min_backward", "min_defense",
               "min_decodes")
    for kind in (*kinds, "all"):
        sel = [r for r in rows if kind in ("all", r["stage"])]
        t = {k: sum(r.get(k, 0) for r in sel) for k in counted}
        for what, low in (("forward", "min_forward"), ("backward", "min_backward"),
                          ("defense_passes", "min_defense"), ("decodes", "min_decodes")):
            t[f"{what.split('_')[0]}_ratio"] = t[what] / t[low] if t[low] else None
        totals[kind] = {"stages": len(sel), **t}
    out = {"unit": "images (through the metric, through the defense, decoded from the store)", "totals": totals,
           "stages": rows}
    atomic_write_json(Path(run_dir) / "passes.json", out)
    return out
