"""The run manifest: config, resolved plugin parameters, package versions, git commit, device, seeds."""
from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from .config import MatrixConfig, _jsonable
from .store import atomic_write_json

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


def device_info(device: str) -> dict[str, str | None]:
    import torch

    name = None
    if device.startswith("cuda") and torch.cuda.is_available():
        name = torch.cuda.get_device_name(torch.device(device))
    return {"device": device, "device_name": name or platform.processor() or platform.machine(),
            "cuda_available": str(torch.cuda.is_available())}


def write_manifest(run_dir: Path, cfg: MatrixConfig) -> dict:
    plugins = {fam: [{"label": s.label, "name": s.name, "params": _jsonable(s.params),
                      "class": f"{s.cls.__module__}.{s.cls.__qualname__}"} for s in getattr(cfg, fam)]
               for fam in ("datasets", "metrics", "attacks", "defenses")}
    run = cfg.run
    manifest = {
        "name": run.name, "config_file": str(cfg.path), "config": _jsonable(cfg.raw),
        "run": {"device": run.device, "batch_size": run.batch_size, "seed": run.seed,
                "image_size": run.image_size, "size_policy": run.size_policy},
        "plugins": plugins, "versions": versions(), "git_commit": git_commit(), **device_info(run.device),
        "platform": platform.platform(), "argv": sys.argv,
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_json(Path(run_dir) / "manifest.json", manifest)
    return manifest
