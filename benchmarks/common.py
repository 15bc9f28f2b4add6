"""Helpers of the benchmark scripts: machine metadata written beside every result (strict JSON, as kornia's
benchmarks do) and the timing of one call."""
from __future__ import annotations

import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path


def machine() -> dict:
    import torch

    from benchmark.manifest import git_commit, versions

    return {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "versions": versions(), "git_commit": git_commit()}


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=1, allow_nan=False) + "\n")


def timed(fn, device=None) -> tuple[float, float, object]:
    """Wall-clock and process CPU seconds of one call ``fn()``, and its result (CUDA synchronised around it)."""
    import torch

    cuda = device is not None and torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0, time.process_time() - c0, out
