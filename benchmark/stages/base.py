"""The stage contract: what a stage is (:class:`Stage`) and what its function receives (:class:`StageContext`).

A stage is one unit of work of the stage graph (:mod:`benchmark.stages.graph`): a kind (``clean``, ``attack``,
``def_quality``, ``def_clean``, ``def_adv``, ``strip``), a content key (everything that determines its record),
the cell it was planned for (its plugin specs and labels), the keys of the stages it reads (``deps``, by kind)
and what it asks of an executor (``resources``). Its function is ``run(ctx, stage) -> record``: it reads its
inputs through ``ctx`` (the dataset's images, built plugins, the stored records and files of its deps) and
returns a JSON-able record; the runner stores it, with its failures and skips (:meth:`Runner.run_stage`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from ..config import PluginSpec


@dataclass
class Cell:
    """One cell of the matrix and the content keys of the stages it needs, by kind."""
    dataset: PluginSpec
    metric: PluginSpec
    attack: PluginSpec
    defense: PluginSpec
    keys: dict[str, str] = field(default_factory=dict)

    def labels(self) -> dict[str, str]:
        return {"dataset": self.dataset.label, "metric": self.metric.label, "attack": self.attack.label,
                "defense": self.defense.label}


@dataclass(frozen=True)
class Stage:
    """One unit of work of the stage graph: what it computes, from what, after what, on what."""
    kind: str                    # a key of benchmark.stages.graph.KINDS
    key: str                     # content key: everything that determines its record
    cell: Cell                   # the first cell (in plan order) that needs it: labels and plugin specs
    deps: dict[str, str]         # kind -> key of each stage that must be stored first
    inputs: tuple[str, ...]      # what it reads: "images", "metric", "defense", "attack:<key>", "def_quality:<key>"
    resources: dict[str, float]  # Ray-style requests: {"num_cpus": 1, "num_gpus": 0 or 1}

    def labels(self) -> dict[str, str]:
        return self.cell.labels()


@dataclass(frozen=True)
class StageKind:
    """A kind of stage as the graph declares it: the stages it reads, what it uses, and its function."""
    name: str
    deps: tuple[str, ...]                           # kinds of the stages it reads, in the same cell
    uses_metric: bool                               # False: shared by every metric (def_quality)
    run: Callable[[Any, Stage], dict[str, Any]]     # (StageContext, Stage) -> record
    doc: str = ""
