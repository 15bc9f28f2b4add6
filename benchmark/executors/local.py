"""The ``local`` executor: every stage in this process, in the stage graph's dependency order.

The graph lists the stages cell by cell in plan order (dataset, metric, attack, defense), so consecutive stages
share their dataset, metric and attack: the runner's context keeps each built once and decodes an attack's
images once for all its defenses. A shared stage (the clean scores, an attack reused by every defense, D(x)
reused by every metric) is computed the first time the graph lists it and read back by the others.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from tqdm.auto import tqdm

if TYPE_CHECKING:
    from ..runner import Cell, Runner, Stage


class LocalExecutor:
    name = "local"

    def execute(self, runner: Runner, graph: dict[str, Stage], cells: list[Cell]) -> None:
        """Run every stage not yet stored, in order; the runner records each outcome."""
        open_cells = [c for c in cells if not runner.cell_done(c)]
        bar = tqdm(total=len(cells), desc="matrix", unit="cell", disable=not runner.progress)
        bar.update(len(cells) - len(open_cells))
        waiting: dict[str, list[Cell]] = {}
        for c in open_cells:
            for key in c.keys.values():
                waiting.setdefault(key, []).append(c)
        for stage in graph.values():
            if stage.key not in waiting:
                continue
            runner.run_stage(stage)
            for c in waiting.pop(stage.key):
                if all(k not in waiting for k in c.keys.values()):  # its last stage ran
                    bar.update(1)
        bar.close()
