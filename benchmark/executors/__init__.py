"""Executors: what runs the planned stages of a matrix (``benchmark.runner.plan`` / ``stage_graph``).

- ``local`` (default): every stage in this process (:mod:`benchmark.executors.local`).
- ``ray``: units of stages on a Ray cluster, results written by the driver (:mod:`benchmark.executors.ray_executor`);
  needs ``pip install -e '.[ray]'``.
"""
from __future__ import annotations

from typing import Any

from ..config import EXECUTORS


def make_executor(name: str, **options: Any):
    """The executor called ``name``; ``options`` go to the Ray executor (address, workers, ...)."""
    if name == "local":
        from .local import LocalExecutor

        return LocalExecutor()
    if name == "ray":
        from .ray_executor import RayExecutor, require_ray

        require_ray()
        return RayExecutor(**options)
    from ..errors import ConfigError

    raise ConfigError(f"unknown executor {name!r} (choose one of {', '.join(EXECUTORS)})")
