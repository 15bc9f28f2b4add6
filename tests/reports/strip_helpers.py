"""The ``strip`` stages of a matrix and the context the runner gives them, for calling the stage function
directly on a finished run (benchmark/stages/strip.py)."""
from __future__ import annotations

from pathlib import Path

from benchmark.config import load_config
from benchmark.stages.base import Stage
from benchmark.stages.context import StageContext
from benchmark.stages.graph import plan, stage_graph
from benchmark.store import RunStore


def strip_stages(config: Path) -> dict[str, Stage]:
    """The strip stage of every cell of ``config``'s matrix, by the cell's defense label."""
    cfg = load_config(config)
    return {s.cell.defense.label: s for s in stage_graph(plan(cfg), cfg.run.device).values() if s.kind == "strip"}


def context(config: Path, run_dir: Path, **run_changes) -> StageContext:
    """The runner's stage context on ``run_dir`` (``run_changes``: [run] settings replaced, e.g. batch_size)."""
    import dataclasses

    cfg = load_config(config)
    if run_changes:
        cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, **run_changes))
    return StageContext(cfg, RunStore(run_dir), progress=False)
