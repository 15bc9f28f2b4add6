"""``[run]`` of a ``matrix.toml``: where and how a run executes, validated into :class:`RunSettings`.

Each bad key is one error (its default is used meanwhile, so the other keys are checked too); unknown keys are
errors with the closest known key. The command line wins over the file (``--device``, ``--threads``,
``--executor``, ``--address``, ``--output-dir``), checked as the file's value would be.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .attacked import FORMATS as ATTACKED_FORMATS
from .config_values import coerce, join_key, one_line, show
from .errors import ConfigError
from .params import MAX_IMAGE_SIDE
from .store import run_name_problem

SIZE_POLICIES = ("resize", "center_crop", "keep")
EXECUTORS = ("local", "ray")   # what runs the stages (benchmark.executors.make_executor builds them)
RUN_KEYS = {"name", "output_dir", "device", "batch_size", "seed", "image_size", "size_policy", "plugins", "lpips",
            "dists", "attacked_images", "executor", "ray_address", "threads"}
MAX_THREADS = 1024
# torch threads per process that runs stages, when [run] threads is not given: None, torch's own default (one per
# core). Measured (docs/matrix.md): on an idle 2-core machine the quickstart takes 37.6 s with torch's default
# against 65.5 s with one thread; on a machine whose cores are all busy (several runs, Ray workers, tests), every
# thread past one per process slows a stage down (benchmarks/torch_threads.py: 5.7 s against 53.7 s), so such a
# run sets threads = 1. Records are bit-identical to the Ray executor's single-threaded workers with threads = 1;
# the default keeps the records of runs made before this key existed.
DEFAULT_THREADS: int | None = None


@dataclass(frozen=True)
class RunSettings:
    name: str
    output_dir: Path
    device: str = "cpu"
    batch_size: int = 4
    seed: int = 0
    image_size: tuple[int, int] | None = (256, 256)
    size_policy: str = "resize"
    plugins: tuple[Path, ...] = ()
    lpips: bool = False
    dists: bool = False
    attacked_images: str = "png"     # how attacked images are stored and measured (benchmark.attacked)
    executor: str = "local"          # where stages run; `run --executor` overrides it
    ray_address: str | None = None   # the Ray cluster to join; `run --address` overrides it
    # torch threads (torch.set_num_threads) of each process that runs stages; `run --threads` overrides it
    threads: int | None = DEFAULT_THREADS


def device_problem(device: str) -> str | None:
    """Why ``device`` cannot run here (not a device name, or absent on this machine), or None when it can."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        return f"{show(device)} is not a device name (expected \"cpu\", \"cuda\", \"cuda:N\" or \"mps\")"
    if dev.type == "cpu":
        return None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return (f"CUDA is not available on this machine (torch {torch.__version__}, built for CUDA "
                    f"{torch.version.cuda or 'none'}); use device = \"cpu\" or --device cpu")
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n:
            return f"this machine has {n} CUDA device(s): cuda:0 to cuda:{n - 1}"
        return None
    module = torch.backends.mps if dev.type == "mps" else getattr(torch, dev.type, None)
    available = getattr(module, "is_available", None)
    if available is None or not available():
        return f"device type '{dev.type}' is not available on this machine"
    return None


def checked_device(device: str, fname: str, key: str) -> str:
    """``device`` when it can run here, else a ConfigError naming ``fname`` and ``key``."""
    problem = device_problem(device)
    if problem:
        raise ConfigError(problem, file=fname, key=key)
    return device


def threads_problem(value: Any) -> str | None:
    """Why ``value`` cannot be a number of torch threads, or None when it can."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_THREADS:
        return f"expected an integer within 1..{MAX_THREADS} (torch threads per process), got {show(value)}"
    return None


def checked_threads(threads: Any, fname: str, key: str) -> int:
    """``threads`` when it is a number of torch threads, else a ConfigError naming ``fname`` and ``key``."""
    problem = threads_problem(threads)
    if problem:
        raise ConfigError(problem, file=fname, key=key)
    return threads


def output_dir_problem(text: str) -> str | None:
    """Why ``text`` cannot be the folder runs are written under, or None when it can (a missing folder is made)."""
    if not text.strip():
        return "must not be blank"
    if "\0" in text:
        return "must not contain a NUL character"
    try:
        p = Path(text).expanduser()
        if p.exists() and not p.is_dir():
            return f"{p} exists and is not a folder"
    except (OSError, RuntimeError, ValueError) as exc:  # an unknown ~user, a name too long
        return f"is not a usable folder name ({one_line(exc)})"
    return None


def parse_run(run: Any, fname: str, base: Path, default_name: str, errs: list[ConfigError]) -> RunSettings:
    """``[run]``; each bad key is appended to ``errs`` (and its default used, so that the rest is checked too)."""
    if not isinstance(run, dict):
        errs.append(ConfigError("expected a table", file=fname, key="run"))
        run = {}
    for first in sorted(set(run) - RUN_KEYS):
        close = difflib.get_close_matches(first, RUN_KEYS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        errs.append(ConfigError(f"unknown key{hint}; expected one of {sorted(RUN_KEYS)}", file=fname,
                                key=join_key("run", first)))

    def get(key: str, ann: Any, default: Any, check=None) -> Any:
        """The value of ``key`` (``default`` when absent or wrong); ``check(value)`` says what is wrong with it."""
        if key not in run:
            return default
        try:
            value = coerce(run[key], ann, fname, f"run.{key}", base)
        except ConfigError as exc:
            errs.append(exc)
            return default
        problem = check(value) if check else None
        if problem:
            errs.append(ConfigError(problem, file=fname, key=f"run.{key}"))
            return default
        return value

    size = run.get("image_size", 256)
    image_size: tuple[int, int] | None = (256, 256)
    if size == "keep":
        image_size = None
    else:
        if isinstance(size, int) and not isinstance(size, bool):
            size = [size, size]
        try:
            image_size = tuple(coerce(size, tuple[int, int], fname, "run.image_size", base))
            if min(image_size) < 32 or max(image_size) > MAX_IMAGE_SIDE:
                raise ConfigError(f"expected sizes within 32..{MAX_IMAGE_SIDE} (an integer or [height, width]) or "
                                  f"\"keep\", got {show(run['image_size'])}", file=fname, key="run.image_size")
        except ConfigError as exc:
            errs.append(exc)
            image_size = (256, 256)

    def one_of(options):
        return lambda v: None if v in options else f"expected one of {options}, got {v!r}"

    policy = get("size_policy", str, "resize" if image_size else "keep", one_of(SIZE_POLICIES))
    batch = get("batch_size", int, 4, lambda v: None if v >= 1 else f"expected a positive integer, got {v}")
    plugins = tuple(Path(p) for p in get("plugins", list[Path], []))
    fmt = get("attacked_images", str, "png", one_of(ATTACKED_FORMATS))
    executor = get("executor", str, "local", one_of(EXECUTORS))
    address = get("ray_address", str, None)
    if address is not None and executor != "ray":
        errs.append(ConfigError('needs executor = "ray"', file=fname, key="run.ray_address"))
    name = default_name
    if "name" in run:
        name = get("name", str, None)
    if name is not None and (problem := run_name_problem(name)) is not None:
        errs.append(ConfigError(f"run name {name!r} {problem}: it names the folder <output_dir>/<name>", file=fname,
                                key="run.name"))
    output_dir = get("output_dir", str, "runs", output_dir_problem)
    return RunSettings(
        name=name or "run", output_dir=Path(output_dir),
        device=get("device", str, "cpu"), batch_size=batch, seed=get("seed", int, 0),
        image_size=image_size, size_policy=policy, plugins=plugins, lpips=get("lpips", bool, False),
        dists=get("dists", bool, False), attacked_images=fmt, executor=executor, ray_address=address,
        threads=get("threads", int, DEFAULT_THREADS, threads_problem),
    )


__all__ = ["DEFAULT_THREADS", "EXECUTORS", "RUN_KEYS", "RunSettings", "SIZE_POLICIES", "checked_device",
           "checked_threads", "device_problem", "output_dir_problem", "parse_run", "threads_problem"]
