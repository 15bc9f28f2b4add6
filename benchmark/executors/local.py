"""The ``local`` executor: every stage in this process, dataset by dataset and metric by metric.

Each dataset's image list is read once (the images themselves are read batch by batch by each stage,
:mod:`benchmark.source`) and each metric is built once; the cells of a (dataset, metric)
pair then run in plan order, so the shared stages (clean scores, an attack reused by every defense)
are computed by the first cell that needs them and read back from the store by the others.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from tqdm.auto import tqdm

if TYPE_CHECKING:
    from ..runner import Cell, Runner


class LocalExecutor:
    name = "local"

    def execute(self, runner: Runner, cells: list[Cell]) -> int:
        """Run every cell not yet stored; returns the number of failed cells."""
        n_failed = 0
        bar = tqdm(total=len(cells), desc="matrix", unit="cell", disable=not runner.progress)
        for ds in runner.cfg.datasets:
            ds_cells = [c for c in cells if c.dataset is ds]
            try:
                images = runner.open_images(ds)
            except Exception as exc:
                n_failed += runner._fail_cells(ds_cells, "dataset", exc, bar)
                continue
            for m in runner.cfg.metrics:
                m_cells = [c for c in ds_cells if c.metric is m]
                if all(runner._cell_done(c) for c in m_cells):
                    bar.update(len(m_cells))
                    continue
                try:
                    metric = runner.build_metric(m)
                except Exception as exc:
                    n_failed += runner.metric_unavailable(m, m_cells, exc, bar)
                    continue
                for cell in m_cells:
                    n_failed += 0 if runner._run_cell(cell, metric, images) else 1
                    bar.update(1)
        bar.close()
        return n_failed
