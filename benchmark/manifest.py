"""The run manifest: config, resolved plugin parameters, package versions, git commit, device, seeds.

Its ``"tool"`` field (``store.TOOL``) marks the directory as a run of this tool: ``--overwrite`` deletes
only directories that carry it.
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from .config import MatrixConfig
from .config_values import jsonable as _jsonable
from .store import TOOL, atomic_write_json

PACKAGES = ("torch", "torchvision", "pyiqa", "kornia", "numpy", "scipy", "pandas", "iqa-robustness-benchmark")


def versions() -> dict[str, str | None]:
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            out[p] = None
    return out


def git_commit() -> str | None:
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return res.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``'s "model name" on Linux, ``platform.processor()`` elsewhere), with
    the number of logical cores; the machine type when neither names it."""
    name = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware")) and ":" in line:
                name = " ".join(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    name = name or platform.processor() or platform.machine() or "unknown CPU"
    return f"{name} ({os.cpu_count() or '?'} logical cores)"


def device_info(device: str) -> dict[str, str | None]:
    """What the run ran on: the device, its name (the GPU's, else the CPU model), torch's version and the CUDA
    version torch was built with (None for a CPU-only build)."""
    import torch

    name = None
    if device.startswith("cuda") and torch.cuda.is_available():
        name = torch.cuda.get_device_name(torch.device(device))
    return {"device": device, "device_name": name or cpu_model(), "cpu": cpu_model(),
            "torch": torch.__version__, "cuda_version": torch.version.cuda,
            "cuda_available": str(torch.cuda.is_available())}


def _plain(params: dict) -> dict:
    """``params`` as JSON values (a third-party plugin's default that JSON cannot hold becomes its ``str``)."""
    return json.loads(json.dumps(_jsonable(params), default=str, allow_nan=True))


def write_manifest(run_dir: Path, cfg: MatrixConfig) -> dict:
    # "params": the canonical parameters (only those that differ from the defaults: the content key);
    # "resolved_params": every constructor parameter, defaults filled in as they were at run time.
    # attacks: every attack the plan runs, adaptive twins included, with whether it is adaptive and its EOT draws
    plugins = {fam: [{"label": s.label, "name": s.name, "params": _jsonable(s.params),
                      "resolved_params": _plain(s.resolved()),
                      "class": f"{s.cls.__module__}.{s.cls.__qualname__}",
                      **({"adaptive": s.adaptive, "eot_samples": s.eot_samples if s.adaptive else 0}
                         if fam == "attacks" else {})}
                     for s in (cfg.attack_variants() if fam == "attacks" else getattr(cfg, fam))]
               for fam in ("datasets", "metrics", "attacks", "defenses")}
    run = cfg.run
    manifest = {
        "tool": TOOL, "name": run.name, "config_file": str(cfg.path), "config": _jsonable(cfg.raw),
        "run": {"device": run.device, "batch_size": run.batch_size, "seed": run.seed,
                "image_size": run.image_size, "size_policy": run.size_policy},
        "plugins": plugins, "versions": versions(), "git_commit": git_commit(), **device_info(run.device),
        "platform": platform.platform(), "argv": sys.argv,
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_json(Path(run_dir) / "manifest.json", manifest)
    return manifest
