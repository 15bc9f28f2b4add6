"""The ``ray`` executor: the matrix's independent stages on a Ray cluster (``run --executor ray``).

Units of work are the ``clean`` stage of each (dataset, metric) pair, then each cell (attack, defended
clean and defended attacked stages, through the runner's own ``run_cell``). A cell is sent out once
its pair's clean scores are stored and none of the stages it still needs is being computed by another
unit, so a shared stage (an attack reused by every defense, a defense's clean branch reused by every
attack) is computed exactly once, as in the local executor.

Units run on a pool of actors (:class:`~benchmark.executors.worker.StageWorker`), each holding
``num_cpus`` CPUs (and one GPU when ``run.device`` is CUDA) and keeping its last metric and dataset
loaded; a unit goes preferably to an actor that already holds its pair. Workers return records, which
the driver writes through the run's ``RunStore``; attacked images are read and written one at a time
through a :class:`~benchmark.executors.worker.StageFiles` actor pinned to the driver's node (no CPU
requested), so the run directory lives on the driver only and no process holds a stage's images. A worker process that dies is restarted (``max_restarts``) and its unit retried
(``max_task_retries``, and ``retry_exceptions`` for errors outside the stage code, which records its
own failures as the local executor does); a unit that still fails is recorded as failed.
Seeds are content-keyed, so the records equal the local executor's for the same config: bit for bit
when the local run uses as many torch threads as a worker (``cpus_per_worker``, 1), otherwise within
float32 rounding (sums in another order). Unlike the local executor, the clean stage of a pair is
computed even when every cell of the pair is skipped by capability (it costs one forward per image).

Without an address (``--address``, ``RAY_ADDRESS``) and without a cluster that ``ray start`` started on this
machine, the executor starts a Ray instance of its own. Ray ≥ 2.60 then enables token authentication and,
unless told otherwise, writes a token to ``~/.ray/auth_token``, which every later ``ray start`` on the machine
picks up (a second node started without it cannot join). When the user set none of ``RAY_AUTH_MODE``,
``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``, the executor passes a token of this process in the environment
instead (authentication stays on; nothing is written to ``~/.ray``) and restores the environment when the run
ends. Joining a cluster, authentication is the cluster's and the user's business.
"""
from __future__ import annotations

import logging
import os
import secrets
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from ..errors import BenchmarkError, MissingWeightsError
from ..runner import STAGES, stage_resources
from .ray_cluster import AUTH_VARS, environ
from .worker import StageFiles, StageWorker, Unit, spec_key

if TYPE_CHECKING:
    from ..runner import Cell, Runner

log = logging.getLogger(__name__)
INSTALL_HINT = "the ray executor needs Ray: pip install -e '.[ray]'"
OWN_TOKEN = secrets.token_hex(32)  # the token of the Ray instances this process starts (never written to a file)


def require_ray():
    try:
        import ray
    except ImportError:
        raise BenchmarkError(INSTALL_HINT) from None
    return ray


def remote_exception(err: dict[str, Any]) -> Exception:
    """A worker's setup error as the driver reports it: same type name and message as in-process."""
    cls = MissingWeightsError if err["missing_weights"] else type(err["type"], (Exception,), {})
    exc = cls.__new__(cls)
    Exception.__init__(exc, err["message"])
    return exc


class RemoteFiles:
    """Read/write/flush of the run's image files through the driver's :class:`StageFiles` actor: a read
    waits for its bytes; writes are sent without waiting and ``flush`` waits for them all."""

    def __init__(self, server):
        self.server, self.pending = server, []

    def read(self, kind: str, key: str, image_id: str, fmt: str) -> bytes:
        import ray

        return ray.get(self.server.read.remote(kind, key, image_id, fmt))

    def write(self, kind: str, key: str, image_id: str, data: bytes, fmt: str) -> None:
        self.pending.append(self.server.write.remote(kind, key, image_id, data, fmt))
        if len(self.pending) >= 64:  # bounded: a stage's images are never all in flight
            self.flush()

    def flush(self) -> None:
        import ray

        pending, self.pending = self.pending, []
        ray.get(pending)

    def __getstate__(self):  # sent to a worker without the writes in flight here
        return {"server": self.server}

    def __setstate__(self, state):
        self.server, self.pending = state["server"], []


@dataclass
class _Job:
    unit: Unit
    cells: list  # the cells it finishes (none for a clean unit)
    group: tuple[str, str]
    claims: set[str] = field(default_factory=set)


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None, *, cpus_per_worker: float = 1,
                 max_retries: int = 3):
        if workers is not None and workers < 1:
            raise BenchmarkError(f"--ray-workers must be at least 1, got {workers}")
        self.address, self.workers, self.cpus, self.max_retries = address, workers, cpus_per_worker, max_retries

    # -- cluster ------------------------------------------------------------------------------
    def _connect(self, ray, stack: ExitStack) -> bool:
        """Connect to the cluster, or start a Ray instance of this run (its token in the environment while it runs,
        see the module's notes); False when this process was connected already."""
        if ray.is_initialized():
            return False
        if self._starts_own_instance() and not any(k in os.environ for k in AUTH_VARS):
            stack.enter_context(environ({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": OWN_TOKEN}))
        ray.init(address=self.address, logging_level=logging.WARNING, log_to_driver=True,
                 **({} if self.address else {"include_dashboard": False}))
        stack.callback(ray.shutdown)
        return True

    def _starts_own_instance(self) -> bool:
        """Whether ``ray.init`` will start a new Ray instance: no address given, none in ``RAY_ADDRESS``, and no
        cluster that ``ray start`` started on this machine (which ``ray.init()`` would join)."""
        if self.address or os.environ.get("RAY_ADDRESS"):
            return False
        try:
            from ray._private.services import canonicalize_bootstrap_address
        except ImportError:  # pragma: no cover - another Ray layout: leave authentication to Ray
            return False
        return canonicalize_bootstrap_address(None) is None

    def _actors(self, ray, runner: Runner, n_units: int) -> tuple[Any, int]:
        # every stage asks for the same resources (one GPU with a CUDA device), so one actor shape serves all
        gpus = stage_resources(runner.cfg.run.device)["num_gpus"]
        total = ray.cluster_resources()
        fit = int(total.get("GPU", 0) // gpus) if gpus else int(total.get("CPU", 1) // self.cpus)
        n = max(1, min(self.workers or fit or 1, n_units))
        if gpus and total.get("GPU", 0) < gpus:
            raise BenchmarkError(f"run.device is {runner.cfg.run.device} but the Ray cluster has no GPU")
        plugins = {str(p): Path(p).read_text() for p in runner.cfg.run.plugins}
        actor_cls = ray.remote(StageWorker).options(num_cpus=self.cpus, num_gpus=gpus, max_restarts=self.max_retries,
                                                  max_task_retries=self.max_retries)
        make = lambda: actor_cls.remote(runner.cfg, str(runner.store.root), plugins, max(1, int(self.cpus)))  # noqa: E731
        return make, n

    @staticmethod
    def _file_server(ray, runner: Runner):
        """A :class:`StageFiles` actor on this (the driver's) node, serving the run directory's image files."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
        return ray.remote(StageFiles).options(num_cpus=0, max_concurrency=8, scheduling_strategy=here,
                                              max_restarts=-1, max_task_retries=3).remote(str(runner.store.root))

    # -- scheduling ---------------------------------------------------------------------------
    def execute(self, runner: Runner, cells: list[Cell]) -> int:
        ray = require_ray()
        todo = [c for c in cells if not runner.cell_done(c)]
        self._stored = {c.keys[k] for c in cells for k in STAGES if runner.store.has(k, c.keys[k])}
        jobs = self._jobs(todo, self._stored)
        bar = tqdm(total=len(cells), desc="matrix (ray)", unit="cell", disable=not runner.progress)
        bar.update(len(cells) - len(todo))
        if not jobs:
            bar.close()
            return 0
        with ExitStack() as stack:  # what connecting changed, undone when the run ends however it ends
            self._connect(ray, stack)
            return self._schedule(ray, runner, jobs, bar)

    def _schedule(self, ray, runner: Runner, jobs: list[_Job], bar) -> int:
        """Run ``jobs`` on a pool of actors until every one is done; returns the failed-cell count."""
        actors: list = []
        try:
            self._files = RemoteFiles(self._file_server(ray, runner))
            make, n = self._actors(ray, runner, len(jobs))
            actors = [make() for _ in range(n)]
            held: list[tuple[str, str] | None] = [None] * n  # the (dataset, metric) pair each actor last ran
            flight: dict[Any, tuple[int, _Job]] = {}
            claimed: set[str] = set()
            n_failed = 0
            while jobs or flight:
                busy = {i for i, _ in flight.values()}
                for i in (i for i in range(n) if i not in busy):
                    job = self._pick(jobs, held[i], runner, claimed)
                    if job is None:
                        break
                    jobs.remove(job)
                    job.claims = self._fill(job, runner)
                    claimed |= job.claims
                    flight[actors[i].run.options(retry_exceptions=True).remote(job.unit)] = (i, job)
                    held[i] = job.group
                if not flight:
                    raise RuntimeError("ray executor: no unit can start (a dependency cycle in the plan)")
                ref = ray.wait(list(flight), num_returns=1)[0][0]
                i, job = flight.pop(ref)
                claimed -= job.claims
                try:
                    out = ray.get(ref)
                except Exception as exc:  # the worker died more often than max_restarts, or a retried error
                    log.error("ray unit of %s failed after retries: %s", job.unit.cell.labels(), exc)
                    ray.kill(actors[i])
                    actors[i], held[i] = make(), None
                    n_failed += self._lost(runner, job, exc, jobs, bar)
                    continue
                n_failed += self._apply(runner, job, out, jobs, bar)
        finally:
            bar.close()
            for a in actors:
                ray.kill(a)
        return n_failed

    @staticmethod
    def _jobs(todo: list[Cell], stored: set[str]) -> list[_Job]:
        """A clean unit per (dataset, metric) pair whose clean stage is not stored, then one unit per cell."""
        jobs, seen = [], set()
        for c in todo:
            group = (spec_key(c.dataset), spec_key(c.metric))
            if group not in seen and c.keys["clean"] not in stored:
                jobs.append(_Job(Unit("clean", c), [], group))
                seen.add(group)
            jobs.append(_Job(Unit("cell", c), [c], group))
        return jobs

    def _open(self, job: _Job, runner: Runner) -> set[str]:
        """Stage keys the job would compute: those neither stored nor failed."""
        kinds = ("clean",) if job.unit.kind == "clean" else STAGES
        keys = {job.unit.cell.keys[k] for k in kinds}
        return {k for k in keys if k not in self._stored and k not in runner.failed}

    def _pick(self, jobs: list[_Job], group, runner: Runner, claimed: set[str]) -> _Job | None:
        """The first job that can start now, preferring the pair the actor already holds."""
        first = None
        for job in jobs:
            clean = job.unit.cell.keys["clean"]
            if job.unit.kind == "cell" and clean not in self._stored and clean not in runner.failed:
                continue
            if self._open(job, runner) & claimed:
                continue
            if job.group == group:
                return job
            first = first or job
        return first

    def _fill(self, job: _Job, runner: Runner) -> set[str]:
        """Give the unit the stored stages it reads, and the failures it must not retry; returns its claims."""
        c, unit, store = job.unit.cell, job.unit, runner.store
        for kind in STAGES if unit.kind == "cell" else ():
            if c.keys[kind] in self._stored:
                unit.records[(kind, c.keys[kind])] = store.load(kind, c.keys[kind])
        if unit.kind == "cell" and store.has("def_quality", c.keys["def_quality"]):  # (x, D(x)) of another metric
            unit.records[("def_quality", c.keys["def_quality"])] = store.load("def_quality", c.keys["def_quality"])
        unit.files = self._files
        unit.failed = dict(runner.failed)
        return self._open(job, runner)

    def _apply(self, runner: Runner, job: _Job, out: dict, jobs: list[_Job], bar) -> int:
        """Write a finished unit's stages through the run's store; returns the cells it failed."""
        for kind, key, record in out["saved"]:  # the unit flushed its images first: a JSON marks a stage complete
            runner.store.save(kind, key, record)
            self._stored.add(key)
        for key, record in out["errors"]:
            runner.store.save_error(key, record)
        runner.failed.update(out["failed"])
        runner.skipped += [s for s in out["skipped"] if s not in runner.skipped]
        if out["setup_error"]:  # the dataset or the metric could not be set up: as the local executor does
            err, exc = out["setup_error"], remote_exception(out["setup_error"])
            same = (lambda j: j.group[0] == job.group[0]) if err["what"] == "dataset" else (lambda j: j.group == job.group)
            cells = job.cells + self._drop(jobs, same)
            if err["what"] == "dataset":
                return runner.fail_cells(cells, "dataset", exc, bar)
            return runner.metric_unavailable(job.unit.cell.metric, cells, exc, bar)
        bar.update(len(job.cells))
        return 0 if out["ok"] or not job.cells else len(job.cells)

    def _lost(self, runner: Runner, job: _Job, exc: Exception, jobs: list[_Job], bar) -> int:
        """A unit that failed outside the stage code after every retry: its cells (all its pair's for a
        clean unit) are recorded as failed."""
        cells = job.cells or self._drop(jobs, lambda j: j.group == job.group)
        return runner.fail_cells(cells, "worker", exc, bar) if cells else 0

    @staticmethod
    def _drop(jobs: list[_Job], which) -> list[Cell]:
        """Remove the waiting jobs ``which`` selects; returns their cells."""
        gone = [j for j in jobs if which(j)]
        jobs[:] = [j for j in jobs if not which(j)]
        return [c for j in gone for c in j.cells]
