"""The ``local`` executor: every stage in this process, dataset by dataset and metric by metric.

Each dataset's image list is read once (the images themselves are read batch by batch by each stage,
:mod:`benchmark.source`) and each metric is built once; the cells of a (dataset, metric)
pair then run in plan order, so the shared stages (clean scores, an attack reused by every defense)
are computed by the first cell that needs them and read back from the store by the others.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..runner import Cell, Runner


class LocalExecutor:
    name = "local"

    def execute(self, runner: Runner, cells: list[Cell]) -> int:
        """Run every cell not yet stored in this process (:meth:`Runner.execute_here`); the failed-cell count."""
        return runner.execute_here(cells)
