"""What makes two runs comparable, and one name per plugin instance across runs.

A plugin instance is identified by its registered name and its *resolved* parameters (the constructor's
defaults filled in), read from each run's manifest, so ``median`` and ``median(kernel=3)`` are the same
defense. Path-valued parameters compare by file name (runs from different machines keep weights in
different folders). The protocol of a run is what must agree before its numbers can share a table:
image size and size policy, each dataset's parameters (split, limit, ...), each metric's parameters
(weights) and the attack budgets (threat model and budget of every attack).
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from ..store import RunStore

log = logging.getLogger(__name__)

FAMILIES = ("datasets", "metrics", "attacks", "defenses")


def _norm(v: Any) -> Any:
    """A parameter value in comparable form: floats rounded, absolute paths by file name, containers recursed."""
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, float):
        return int(v) if v.is_integer() else round(v, 10)
    if isinstance(v, str) and ("/" in v or "\\" in v) and Path(v).is_absolute():
        return Path(v).name
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in sorted(v.items())}
    return v


def _defaults(family: str, name: str) -> dict[str, Any] | None:
    import inspect

    from ..registry import REGISTRIES, constructor_params

    try:
        cls = REGISTRIES[family].get(name)
    except Exception:
        return None
    return {p: d for p, _, d in constructor_params(cls) if d is not inspect.Parameter.empty}


def load_plugin_files(manifest: dict) -> None:
    """Register the run's local plugin files (``[run] plugins``), so their defaults can be resolved."""
    from ..registry import load_builtin_plugins, load_plugin_file

    load_builtin_plugins()
    cfg_file = Path(manifest.get("config_file") or ".")
    for p in ((manifest.get("config") or {}).get("run") or {}).get("plugins") or []:
        path = Path(p) if Path(p).is_absolute() else cfg_file.parent / p
        try:
            load_plugin_file(path)
        except Exception as exc:
            log.debug("plugin file %s not loaded: %s", path, exc)


def resolved(family: str, entry: dict) -> dict[str, Any]:
    """The entry's parameters with the constructor's defaults filled in (as given when the class is unknown)."""
    if entry.get("resolved_params") is not None:  # recorded by the run itself (manifest.resolved_params)
        params = dict(entry["resolved_params"])
    else:  # runs written before the manifest recorded them: today's class defaults
        defaults = _defaults(family, entry["name"]) or {}
        params = {**{k: v for k, v in defaults.items()}, **(entry.get("params") or {})}
    return _norm(json.loads(json.dumps(params, default=str)))


def short(v: Any) -> str:
    from ..config_values import label_text as _short

    if isinstance(v, list):
        return "[" + ", ".join(short(x) for x in v) + "]"
    return _short(v)


def canonical_label(family: str, entry: dict) -> str:
    """``name(k=v,...)`` with the parameters that differ from the constructor's defaults, in sorted order."""
    defaults = _norm(json.loads(json.dumps(_defaults(family, entry["name"]) or {}, default=str)))
    params = resolved(family, entry)
    shown = [f"{k}={short(v)}" for k, v in sorted(params.items()) if k not in defaults or defaults[k] != v]
    return entry["name"] + (f"({','.join(shown)})" if shown else "")


def plugin_keys(manifest: dict) -> dict[str, dict[str, tuple[str, str]]]:
    """family -> run label -> (identity key, canonical label) from the manifest's resolved plugins."""
    out: dict[str, dict[str, tuple[str, str]]] = {}
    for fam in FAMILIES:
        out[fam] = {}
        for e in (manifest.get("plugins") or {}).get(fam, []):
            key = json.dumps({"name": e["name"], "params": resolved(fam, e)}, sort_keys=True)
            # an adaptive attack (a twin, or adaptive = true) keeps its mark; load_run adds it to the key
            out[fam][e["label"]] = (key, canonical_label(fam, e) + ("+adaptive" if e.get("adaptive") else ""))
    return out


def protocol(run_dir: Path, manifest: dict) -> dict[str, Any]:
    """What must agree between merged runs (see the module docstring)."""
    run = manifest.get("run") or {}
    budgets = set()
    for rec in RunStore(run_dir).planned_stages("attack"):
        meta = rec.get("attack_meta") or {}
        b = meta.get("budget")
        budgets.add((str(meta.get("threat_model")), round(float(b), 12) if isinstance(b, (int, float)) and
                     math.isfinite(b) else str(b)))
    plugins = manifest.get("plugins") or {}
    return {
        "image size": run.get("image_size"), "size policy": run.get("size_policy"),
        "datasets": {e["name"]: resolved("datasets", e) for e in plugins.get("datasets", [])},
        "metrics": {e["label"]: resolved("metrics", e) for e in plugins.get("metrics", [])},
        "budgets": sorted(budgets),
    }


def _fmt_budgets(b: list) -> str:
    from .plots import fmt_budget

    return "{" + ", ".join(f"{t} {fmt_budget(v) if isinstance(v, float) else v}" for t, v in b) + "}"


def differences(protocols: dict[str, dict[str, Any]]) -> list[str]:
    """Human-readable differences between the runs' protocols (run name -> protocol); empty when they agree."""
    names = list(protocols)
    out = []
    for field in ("image size", "size policy"):
        vals = {n: protocols[n][field] for n in names}
        if len({json.dumps(v) for v in vals.values()}) > 1:
            out.append(f"{field}: " + "; ".join(f"{n}: {v}" for n, v in vals.items()))
    for field, what in (("datasets", "dataset"), ("metrics", "metric")):
        shared: dict[str, dict[str, Any]] = {}
        for n in names:
            for k, params in protocols[n][field].items():
                shared.setdefault(k, {})[n] = params
        for k, per_run in shared.items():
            if len({json.dumps(p, sort_keys=True) for p in per_run.values()}) > 1:
                keys = sorted({p for params in per_run.values() for p in params
                               if len({json.dumps(v.get(p), sort_keys=True) for v in per_run.values()}) > 1})
                out.append(f"{what} {k} parameters ({', '.join(keys)}): " + "; ".join(
                    f"{n}: " + ", ".join(f"{p}={short(params.get(p))}" for p in keys) for n, params in per_run.items()))
    budgets = {n: protocols[n]["budgets"] for n in names}
    if len({json.dumps(b) for b in budgets.values()}) > 1:
        out.append("attack budgets: " + "; ".join(f"{n}: {_fmt_budgets(b)}" for n, b in budgets.items()))
    return out
