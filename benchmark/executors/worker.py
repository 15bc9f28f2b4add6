"""The worker side of a distributed executor: runs one unit of stages and returns what it stored.

A worker keeps the last dataset's image list (:class:`~benchmark.source.ImageSource`) and the last metric built, so consecutive units of the same
(dataset, metric) pair load nothing again. It runs the runner's own stage functions (``run_cell``,
``_stage``, ``_clean``, ...) against a :class:`BufferStore`: the stages the driver already holds are
read from what it sent, and every stage the unit computes (records, errors) is kept in memory and returned, so the driver writes them through its ``RunStore``. No worker writes into the
run directory, which therefore need not be shared between nodes (attacked images are read and written one
at a time through a :class:`StageFiles` actor on the driver's node); only the datasets, weight files and
plugin files must be readable at the same paths on every node (plugin files are sent along when not).

This module imports no Ray: the Ray executor wraps :class:`StageWorker` in ``ray.remote``.
"""
from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ..errors import MissingWeightsError
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
    """A ``RunStore`` that reads the stages the driver sent and buffers new ones for the driver to write;
    per-image files go through ``files`` (an object with ``read``/``write``/``flush``, e.g. the driver's
    :class:`StageFiles` actor behind :class:`~benchmark.executors.ray_executor.RemoteFiles`)."""

    def __init__(self, root: Path, records: dict[tuple[str, str], dict], files: Any):
        super().__init__(root)
        self.records, self.files = dict(records), files
        self.saved: list[tuple[str, str, dict]] = []
        self.new_errors: list[tuple[str, dict]] = []

    def has(self, kind: str, key: str) -> bool:
        return (kind, key) in self.records

    def load(self, kind: str, key: str) -> dict[str, Any]:
        return self.records[(kind, key)]

    def save(self, kind: str, key: str, record: dict[str, Any]) -> None:
        self.files.flush()  # a stage's images are stored before its record
        self.records[(kind, key)] = {"key": key, "kind": kind, **record}
        self.saved.append((kind, key, record))

    def save_image_bytes(self, kind: str, key: str, image_id: str, data: bytes, fmt: str) -> None:
        self.files.write(kind, key, image_id, data, fmt)

    def image_bytes(self, kind: str, key: str, image_id: str, fmt: str) -> bytes:
        return self.files.read(kind, key, image_id, fmt)

    def save_error(self, key: str, record: dict[str, Any]) -> None:
        self.new_errors.append((key, record))

    def clear_error(self, key: str) -> None:  # the driver's store clears it when it saves the stage
        pass


@dataclass
class Unit:
    """What a worker runs: the ``clean`` stage of a (dataset, metric) pair, or a whole ``cell``."""
    kind: str                                   # "clean" or "cell"
    cell: Any                                   # runner.Cell
    records: dict = field(default_factory=dict)  # (kind, key) -> stored record the unit reads
    files: Any = None                            # the run's per-image files (attacked images): read/write/flush
    failed: dict = field(default_factory=dict)   # stage key -> error of a stage that already failed


def spec_key(spec) -> str:
    return spec.key_text()


def describe_exception(exc: BaseException) -> dict[str, Any]:
    """A picklable account of a setup error (plugin exceptions need not unpickle on the driver)."""
    return {"type": type(exc).__name__, "message": str(exc), "missing_weights": isinstance(exc, MissingWeightsError)}


class StageWorker:
    """Runs units of one run's matrix; one per worker process (a Ray actor), reused across units."""

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
        self.cfg, self.run_dir = replace(cfg, run=run), Path(run_dir)
        self._images: tuple[str, Any] | None = None
        self._metric: tuple[str, Any] | None = None

    def run(self, unit: Unit) -> dict[str, Any]:
        from ..runner import Runner

        store = BufferStore(self.run_dir, unit.records, unit.files)
        runner = Runner(self.cfg, self.run_dir, progress=False, store=store)
        runner.failed = dict(unit.failed)
        out: dict[str, Any] = {"ok": False, "setup_error": None}
        cell = unit.cell
        try:
            images = self._dataset(runner, cell.dataset)
        except Exception as exc:
            out["setup_error"] = {"what": "dataset", **describe_exception(exc)}
        else:
            try:
                metric = self._built_metric(runner, cell.metric)
            except Exception as exc:
                out["setup_error"] = {"what": "metric", **describe_exception(exc)}
            else:
                if unit.kind == "clean":
                    out["ok"] = runner.clean_stage(cell, metric, images) is not None
                else:
                    out["ok"] = bool(runner.run_cell(cell, metric, images))
        store.files.flush()
        out.update(saved=store.saved, errors=store.new_errors, failed=runner.failed, skipped=runner.skipped)
        return out

    def _dataset(self, runner, spec):
        if self._images is None or self._images[0] != spec_key(spec):
            self._images = None  # free the previous dataset first
            self._images = (spec_key(spec), runner.open_images(spec))
        return self._images[1]

    def _built_metric(self, runner, spec):
        if self._metric is None or self._metric[0] != spec_key(spec):
            self._metric = None
            self._metric = (spec_key(spec), runner.build_metric(spec))
        return self._metric[1]
