"""The worker side of a distributed executor: computes one stage at a time and returns its outcome.

A worker process holds one :class:`~benchmark.runner.Runner` for its whole life, so its context keeps datasets
listed and metrics and defenses built across the stages it is given. It computes a stage (:meth:`Runner.compute`)
against a :class:`BufferStore`: the records of the stages it reads come from the driver with the stage, and its
outcome (record, error, skip) goes back to the driver, which records it through the run's ``RunStore`` (the one
writer). No worker writes into the run directory, which therefore need not be shared between nodes (image files
are read and written one at a time through a :class:`StageFiles` actor on the driver's node); only the datasets,
weight files and plugin files must be readable at the same paths on every node (plugin files are sent along
when not).

This module imports no Ray: the Ray executor wraps :class:`StageWorker` in ``ray.remote``.
"""
from __future__ import annotations

import logging
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ..store import RunStore

log = logging.getLogger(__name__)


class StageFiles:
    """The run directory's per-image files (attacked images), served from the driver's machine.

    The Ray executor runs one of these as an actor on the driver's node; workers read and write attacked
    images through it one batch at a time, so neither side holds a stage's images."""

    def __init__(self, root: str):
        self.store = RunStore(Path(root))

    def read(self, kind: str, key: str, image_id: str, fmt: str) -> bytes:
        return self.store.image_bytes(kind, key, image_id, fmt)

    def write(self, kind: str, key: str, image_id: str, data: bytes, fmt: str) -> None:
        self.store.save_image_bytes(kind, key, image_id, data, fmt)


class BufferStore(RunStore):
    """A ``RunStore`` whose records are those the driver sent with the stage (``records``, by (kind, key)) and
    whose per-image files go through ``files`` (an object with ``read``/``write``/``flush``, e.g. the driver's
    :class:`StageFiles` actor behind :class:`~benchmark.executors.ray_executor.RemoteFiles`). A worker stores
    no record: the driver records the stage's outcome."""

    def __init__(self, root: Path, records: dict[tuple[str, str], dict], files: Any):
        super().__init__(root)
        self.records, self.files = dict(records), files

    def has(self, kind: str, key: str) -> bool:
        return (kind, key) in self.records

    def load(self, kind: str, key: str) -> dict[str, Any]:
        return self.records[(kind, key)]

    def save_image_bytes(self, kind: str, key: str, image_id: str, data: bytes, fmt: str) -> None:
        self.files.write(kind, key, image_id, data, fmt)

    def image_bytes(self, kind: str, key: str, image_id: str, fmt: str) -> bytes:
        return self.files.read(kind, key, image_id, fmt)


class StageWorker:
    """Computes stages of one run's matrix; one per worker process (a Ray actor), reused across stages."""

    def __init__(self, cfg, run_dir: str, plugin_sources: dict[str, str], threads: int = 1):
        from ..registry import load_builtin_plugins, load_plugin_file

        torch.set_num_threads(max(1, int(threads)))
        load_builtin_plugins()
        for path, source in plugin_sources.items():
            p = Path(path)
            if not p.is_file():  # another node: recreate the plugin file from the driver's copy
                p = Path(tempfile.mkdtemp(prefix="benchmark-plugin-")) / Path(path).name
                p.write_text(source)
            load_plugin_file(p)
        run = cfg.run
        if run.device.startswith("cuda"):  # Ray exposes the GPUs it granted as cuda:0, cuda:1, ...
            run = replace(run, device="cuda")
        from ..runner import Runner

        self.cfg, self.run_dir = replace(cfg, run=run), Path(run_dir)
        self.store = BufferStore(self.run_dir, {}, None)
        # one runner per worker process: its context keeps datasets, metrics and defenses built across stages
        self.runner = Runner(self.cfg, self.run_dir, progress=False, store=self.store)

    def run(self, stage, records: dict, files: Any):
        """Compute one stage (its deps' records in ``records``, by (kind, key); image files through ``files``)
        and return its :class:`~benchmark.runner.Outcome`: the driver records it. Unreadable images found while
        listing a dataset come back in the outcome's ``skipped``."""
        store, runner = self.store, self.runner
        store.records = dict(records)
        store.files = files
        seen = len(runner.skipped)
        out = runner.compute(stage)
        store.files.flush()
        out.skipped = out.skipped + [s for s in runner.skipped[seen:] if s not in out.skipped]
        return out
