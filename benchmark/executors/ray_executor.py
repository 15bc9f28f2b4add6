"""The ``ray`` executor: the matrix's independent stages on a Ray cluster (``run --executor ray``).

Every stage of the stage graph (:mod:`benchmark.stages.graph`) is one task on a pool of actors
(:class:`~benchmark.executors.worker.StageWorker`), sent out as soon as the stages it reads are settled, so
independent stages, of one cell too (its ``attack`` and its defense's ``def_quality``, the ``def_adv`` stages of
one attack), run in parallel, and a stage shared by several cells (an attack reused by every defense, D(x) reused
by every metric) is computed exactly once, as in the local executor. Each actor holds a stage's resources
(``num_cpus`` CPUs, and one GPU when ``run.device`` is CUDA) and keeps datasets, metrics and defenses built across
the stages it runs; a stage goes preferably to an actor whose last stage shared its dataset, metric and attack
(decoded attacked images stay in its memory). Workers return each stage's outcome and the driver records it
through the run's runner (the one writer); image files are read and written one at a time through a
:class:`~benchmark.executors.worker.StageFiles` actor pinned to the driver's node (no CPU requested), so the run
directory lives on the driver only. A worker process that dies is restarted (``max_restarts``) and its stage
retried (``max_task_retries``, ``retry_exceptions``); a stage that still fails is recorded as failed. Seeds are
content-keyed, so the records equal the local executor's for the same config: bit for bit when the local run uses
as many torch threads as a worker (``cpus_per_worker``, 1), otherwise within float32 rounding (sums in another
order). ``RayExecutor.trace`` lists when each stage started and ended on the driver's clock (it is not stored:
records never depend on timing).

Without an address (``--address``, ``RAY_ADDRESS``) and without a cluster that ``ray start`` started on this
machine, the executor starts a Ray instance of its own. Ray ≥ 2.60 then enables token authentication and,
unless told otherwise, writes a token to ``~/.ray/auth_token``, which every later ``ray start`` on the machine
picks up (a second node started without it cannot join). When the user set none of ``RAY_AUTH_MODE``,
``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``, the executor passes a token of this process in the environment
instead (authentication stays on; nothing is written to ``~/.ray``) and restores the environment when the run
ends. Joining a cluster, authentication is the cluster's and the user's business.
"""
from __future__ import annotations

import itertools
import logging
import os
import secrets
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from ..errors import BenchmarkError
from ..errors import run_stopping
from ..runner import Outcome
from ..stages.graph import stage_resources
from .ray_cluster import AUTH_VARS, environ
from .worker import StageFiles, StageWorker

if TYPE_CHECKING:
    from ..runner import Cell, Runner, Stage

log = logging.getLogger(__name__)
INSTALL_HINT = "the ray executor needs Ray: pip install -e '.[ray]'"
LOOKAHEAD = 256   # ready stages an actor's next stage is chosen from (bounds the choice on a study-sized graph)
OWN_TOKEN = secrets.token_hex(32)  # the token of the Ray instances this process starts (never written to a file)


def require_ray():
    try:
        import ray
    except ImportError:
        raise BenchmarkError(INSTALL_HINT) from None
    return ray


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
    def execute(self, runner: Runner, graph: dict[str, Stage], cells: list[Cell]) -> None:
        ray = require_ray()
        todo = {k: st for k, st in graph.items() if not runner.store.has(st.kind, k)}
        bar = tqdm(total=len(cells), desc="matrix (ray)", unit="cell", disable=not runner.progress)
        waiting: dict[str, list[Cell]] = {}
        for c in cells:
            for key in c.keys.values():
                if key in todo:
                    waiting.setdefault(key, []).append(c)
        bar.update(sum(1 for c in cells if all(k not in todo for k in c.keys.values())))
        try:
            if todo:
                with ExitStack() as stack:  # what connecting changed, undone when the run ends however it ends
                    self._connect(ray, stack)
                    self._schedule(ray, runner, todo, waiting, bar)
        finally:
            bar.close()

    def _schedule(self, ray, runner: Runner, todo: dict[str, Stage], waiting: dict[str, list[Cell]], bar) -> None:
        """Run the stages of ``todo`` on a pool of actors, each as soon as the stages it reads are settled."""
        actors: list = []
        # the stages each one still waits for (those stored before the run are not in todo), and who waits for it
        unmet = {key: {d for d in st.deps.values() if d in todo} for key, st in todo.items()}
        dependents: dict[str, list[str]] = {}
        for key, deps in unmet.items():
            for d in deps:
                dependents.setdefault(d, []).append(key)
        ready = {key: st for key, st in todo.items() if not unmet[key]}   # settled deps, in the graph's order

        def settle(key: str) -> None:
            """``key`` has its outcome: its cells may be done, the stages waiting for it may be ready (or blocked,
            recorded here without a worker)."""
            self._settle(key, waiting, bar)
            for d in dependents.pop(key, ()):
                unmet[d].discard(key)
                if not unmet[d]:
                    blocked = runner.blocked_outcome(todo[d])
                    if blocked is None:
                        ready[d] = todo[d]
                    else:
                        runner.record(todo[d], blocked)
                        settle(d)

        self.trace = []
        try:
            files = RemoteFiles(self._file_server(ray, runner))
            make, n = self._actors(ray, runner, len(todo))
            actors = [make() for _ in range(n)]
            held: list[tuple | None] = [None] * n   # the (dataset, metric, attack) of each actor's last stage
            flight: dict[Any, tuple[int, Stage]] = {}
            while ready or flight:
                busy = {i for i, _ in flight.values()}
                for i in (i for i in range(n) if i not in busy):
                    if not ready:
                        break
                    stage = ready.pop(self._pick(ready, held[i]))
                    records = {(k, key): runner.store.load(k, key) for k, key in stage.deps.items()}
                    flight[actors[i].run.options(retry_exceptions=True).remote(stage, records, files)] = (i, stage)
                    held[i] = self._locality(stage)
                    self.trace.append(("start", stage.kind, stage.key, time.monotonic()))
                ref = ray.wait(list(flight), num_returns=1)[0][0]
                i, stage = flight.pop(ref)
                self.trace.append(("end", stage.kind, stage.key, time.monotonic()))
                try:
                    out = ray.get(ref)
                except Exception as exc:  # the worker died more often than max_restarts, or a retried error
                    if (stop := run_stopping(exc)) is not None:
                        raise stop from exc
                    log.error("ray stage %s of %s failed after retries: %s", stage.kind, stage.labels(), exc)
                    ray.kill(actors[i])
                    actors[i], held[i] = make(), None
                    out = Outcome(stage.kind, stage.key, "failed", error={
                        "stage": stage.kind, **stage.labels(), "error": f"worker: {type(exc).__name__}: {exc}"})
                runner.record(stage, out)
                settle(stage.key)
            if any(unmet.values()):
                raise RuntimeError("ray executor: no stage can start (a dependency cycle in the graph)")
        finally:
            for a in actors:
                ray.kill(a)

    @staticmethod
    def _locality(stage: Stage) -> tuple:
        c = stage.cell
        return (c.dataset.key_text(), c.metric.key_text() if stage.kind != "def_quality" else None,
                stage.deps.get("attack"))

    def _pick(self, ready: dict[str, Stage], held) -> str:
        """The key of the ready stage that shares most of the actor's last dataset, metric and attack (the first of
        the first ``LOOKAHEAD`` ready stages, in the graph's order, on a tie)."""
        best, best_score = None, -1
        for key in itertools.islice(ready, LOOKAHEAD):
            loc = self._locality(ready[key])
            score = sum(a is not None and a == b for a, b in zip(loc, held or (None, None, None)))
            if score > best_score:
                best, best_score = key, score
            if score == 3:
                break
        return best

    @staticmethod
    def _settle(key: str, waiting: dict[str, list[Cell]], bar) -> None:
        """A stage has its outcome: a cell whose last stage it was is done."""
        for c in waiting.pop(key, ()):
            if all(k not in waiting for k in c.keys.values()):
                bar.update(1)
