"""A metric fine-tuned to resist attacks, as a defense of its base metric: adversarial training (the
adversarially trained Linearity variants of the Guardians benchmark, Gushchin et al., "Guardians of Image
Quality: Benchmarking Defenses Against Adversarial Attacks on Image Quality Metrics", 2024) or gradient-norm
regularisation ("NT": Liu et al., "Defense Against Adversarial Attacks on No-Reference Image Quality Models
with Gradient Norm Regularization", CVPR 2024), trained by ``python -m benchmark.training.robust_metric``.

In the matrix the fine-tuned model replaces the cell's metric (``replaces_metric``): the clean and attacked
images are scored by it, so its clean fidelity (SROCC with the undefended scores and with MOS,
docs/measures.md) is what the training cost, and an adaptive attack (``adaptive = true``) differentiates
through it (:meth:`RobustMetric.defended_metric`); a non-adaptive attack is a transfer attack from the base
metric. The images are not changed (``forward`` is the identity).

Parameter: ``weights`` (required), the trainer's checkpoint. It records its base metric (name and
parameters, as a matrix names them); a cell of another metric is skipped with the reason. A missing or
corrupt file is one error naming it and the command that writes one.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from ..registry import DEFENSES
from ..weights import CheckpointError, load_checkpoint, save_checkpoint
from .base import Defense

TRAINER = "benchmark.training.robust_metric"
FORMAT = "robust_metric/1"


def plugin_spec(family: str, name: str, params: dict[str, Any], where: str, base: Path | None = None):
    """The :class:`~benchmark.config.PluginSpec` of a plugin named as a matrix table names it: parsed by the
    config's own parser (typed, checked, canonical), so it compares equal to a matrix's entry. ``where`` names
    the source in errors; relative paths are resolved against ``base`` (the current directory)."""
    from ..config import parse_config

    tables = {"datasets": {"name": "synthetic"}, "metrics": {"name": "default"}, "attacks": {"name": "fgsm"},
              "defenses": {"name": "identity"}}
    tables[family] = {"name": name, **params}
    try:
        cfg = parse_config({"run": {"name": "spec"}, **{k: [v] for k, v in tables.items()}},
                           (base or Path.cwd()) / "spec.toml")
    except ConfigError as exc:  # said of `where`, not of the stand-in matrix
        errors = getattr(exc, "errors", None) or [exc]
        said = [(f"{e.key.split('.', 1)[-1]}: " if getattr(e, "key", None) else "") + getattr(e, "detail", str(e))
                for e in errors]
        raise ConfigError("; ".join(said), file=where) from None
    specs = getattr(cfg, family)
    if len(specs) != 1:
        raise ConfigError(f"expected one {family[:-1]}, the parameters expand into {len(specs)}", file=where)
    return specs[0]


def metric_spec(name: str, params: dict[str, Any], where: str = "--metric", base: Path | None = None):
    """The spec of a metric named as a ``[[metrics]]`` table names it (:func:`plugin_spec`)."""
    return plugin_spec("metrics", name, params, where, base)


def base_record(spec) -> dict[str, Any]:
    """What a checkpoint records of its base metric: plain types only (``weights_only`` loading)."""
    from ..config_values import jsonable

    return {"name": spec.name, "params": jsonable(spec.params), "label": spec.label, "key": spec.key_text()}


def save_robust(path: Path, metric: torch.nn.Module, record: dict[str, Any]) -> None:
    """The fine-tuned weights (float32, CPU) with ``record`` (base metric, method, settings, training state)."""
    state = {k: v.detach().float().cpu() if v.is_floating_point() else v.cpu() for k, v in metric.state_dict().items()}
    save_checkpoint(path, {"format": FORMAT, "state_dict": state, **record})


def read_robust(path: Path, key: str = "weights") -> dict[str, Any]:
    """The checkpoint as written by :func:`save_robust`; missing: MissingWeightsError, foreign or corrupt:
    CheckpointError, both naming the file and the command that writes a good one."""
    path = Path(path)
    todo = f"write one with `python -m {TRAINER} --metric NAME --out {path}`"
    ck = load_checkpoint(path, "robust metric", hint=todo, key=key)
    if not isinstance(ck, dict) or ck.get("format") != FORMAT or not isinstance(ck.get("state_dict"), dict) \
            or not isinstance(ck.get("base"), dict) or not {"name", "params", "key"} <= set(ck["base"]):
        got = sorted(map(str, ck))[:6] if isinstance(ck, dict) else type(ck).__name__
        raise CheckpointError(f"{path} is not a robust-metric checkpoint written by {TRAINER} "
                              f"(expected format {FORMAT!r} with 'base' and 'state_dict', got {got}); {todo}")
    return ck


def load_robust(path: Path, key: str = "weights") -> tuple[torch.nn.Module, dict[str, Any]]:
    """The base metric rebuilt from the checkpoint's record with the fine-tuned weights, and the checkpoint."""
    ck = read_robust(path, key)
    base = ck["base"]
    try:
        spec = metric_spec(base["name"], base["params"], where=f"{path} (its base metric)")
        metric = spec.build()
        metric.load_state_dict(ck["state_dict"])
    except (ConfigError, CheckpointError):
        raise
    except Exception as exc:  # noqa: BLE001 - the base metric cannot be built, or the weights do not fit it
        lines = " ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip())
        raise CheckpointError(f"{path}: its base metric {base.get('label', base['name'])} cannot be rebuilt with "
                              f"its weights ({type(exc).__name__}: {lines[:200]})") from None
    return metric.eval(), ck


@DEFENSES.register("robust_metric")
class RobustMetric(Defense):
    """Its base metric fine-tuned by adversarial training or NT (benchmark.training.robust_metric), in its place.

    ``weights`` names the trainer's checkpoint."""

    wraps_metric = True       # it scores the images itself ...
    replaces_metric = True    # ... with another version of the metric, which adaptive attacks differentiate

    def __init__(self, weights: Path):
        super().__init__()
        try:
            model, ck = load_robust(weights, "weights")
        except CheckpointError as exc:
            raise ConfigError(str(exc), key="weights") from None
        for p in model.parameters():
            p.requires_grad_(False)
        self.model = model
        self.base = dict(ck["base"])
        self.method, self.settings = ck.get("method"), ck.get("settings", {})
        self.path = Path(weights)

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return x

    def defended_metric(self, metric):
        return self.model

    def metric_problem(self, spec) -> str | None:
        if spec.key_text() == self.base["key"]:
            return None
        params = json.dumps(self.base["params"], sort_keys=True)
        return (f"robust_metric {self.path} was fine-tuned from metric {self.base['name']} {params}, not from "
                f"{spec.label}: it defends only its base metric")

    def score(self, metric, x: torch.Tensor, *, generator: torch.Generator | None = None
              ) -> tuple[torch.Tensor, list[dict]]:
        with torch.no_grad():
            scores = self.model(x)
        return scores.detach().float().cpu(), [{} for _ in range(len(x))]
