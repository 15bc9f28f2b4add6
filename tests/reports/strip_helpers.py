"""A small stage context for the ``strip`` stage and a stand-in for the runner's last step: store the strip of
every cell of a finished run (what the stage graph does once it runs ``strip`` stages).

:class:`StubContext` has exactly what :func:`benchmark.stages.strip.run` reads from a context: ``cfg``, ``store``,
``device``, ``images(spec)`` (a real :class:`~benchmark.source.ImageSource`), ``defense(spec)`` (built, on the
device, in eval mode) and ``attacked(key, ids, fmt)`` (the attack stage's stored images, stacked).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from benchmark.config import load_config
from benchmark.source import ImageSource
from benchmark.stages import strip
from benchmark.stages.base import Cell, Stage
from benchmark.store import RunStore, atomic_write_json, content_key


class StubContext:
    def __init__(self, cfg, store: RunStore):
        self.cfg, self.store, self.device = cfg, store, torch.device(cfg.run.device)
        self._images: dict[str, ImageSource] = {}
        self._defenses: dict[str, object] = {}

    def images(self, spec) -> ImageSource:
        if spec.key_text() not in self._images:
            self._images[spec.key_text()] = ImageSource.scan(spec, self.cfg.run.image_size, self.cfg.run.size_policy,
                                                             skipped=[])
        return self._images[spec.key_text()]

    def defense(self, spec):
        if spec.key_text() not in self._defenses:
            self._defenses[spec.key_text()] = spec.build().to(self.device).eval()
        return self._defenses[spec.key_text()]

    def attacked(self, key: str, ids: list[str], fmt: str) -> torch.Tensor:
        return torch.stack([self.store.load_image("attack", key, i, fmt) for i in ids]).to(self.device)


def planned_cells(config: Path, run_dir: Path) -> list[Cell]:
    """The cells of ``run_dir``'s cells.json with their plugin specs from ``config`` and a ``strip`` key (the one
    the plan gives, or one made from the cell's ``def_adv`` key for a run stored before strips were planned)."""
    cfg = load_config(config)
    specs = {"dataset": {d.label: d for d in cfg.datasets}, "metric": {m.label: m for m in cfg.metrics},
             "attack": {a.label: a for a, _ in cfg.cell_pairs()}, "defense": {d.label: d for d in cfg.defenses}}
    cells = []
    for c in json.loads((Path(run_dir) / "cells.json").read_text()):
        keys = dict(c["keys"])
        keys.setdefault("strip", content_key({"stage": "strip", "def_adv": keys["def_adv"]}))
        cells.append(Cell(*(specs[k][c[k]] for k in ("dataset", "metric", "attack", "defense")), keys))
    return cells


def strip_stage(cell: Cell) -> Stage:
    return Stage("strip", cell.keys["strip"], cell, {"attack": cell.keys["attack"], "def_adv": cell.keys["def_adv"]},
                 ("images", "defense", f"attack:{cell.keys['attack']}"), {"num_cpus": 1, "num_gpus": 0})


def store_strips(config: Path, run_dir: Path) -> int:
    """Run and store the ``strip`` stage of every cell of a finished run that lacks one, as the runner does
    (record + labels), and name the strip keys in cells.json; returns how many were made."""
    cfg, store = load_config(config), RunStore(run_dir)
    ctx, made = StubContext(cfg, store), 0
    cells = planned_cells(config, run_dir)
    for cell in cells:
        if store.has("strip", cell.keys["strip"]) or not store.has("def_adv", cell.keys["def_adv"]):
            continue
        store.save("strip", cell.keys["strip"], {**strip.run(ctx, strip_stage(cell)), **cell.labels()})
        made += 1
    atomic_write_json(Path(run_dir) / "cells.json", [{**c.labels(), "keys": c.keys} for c in cells])
    return made
