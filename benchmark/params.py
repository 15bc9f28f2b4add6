"""Checks of plugin parameters that ``validate`` runs before any work, without loading data or weights.

A plugin class may define ``check_params(cls, params, base) -> dict``: it receives the parameters with
defaults filled in (typed by the config layer already: numbers are numbers, paths absolute ``Path``
objects), raises :class:`~benchmark.errors.ConfigError` with ``key=<parameter>`` for a bad value (the
config layer adds the file and the table, ``metrics[0].weights``), and returns the parameters to use
(normalised where a plugin has two spellings of one thing). ``base`` is the config file's folder, for
relative paths inside free-form tables such as pyiqa's ``options``. Only ``stat`` calls, no reading.

Files of path-typed parameters that do not exist are found by the config layer for every plugin
(``optional = true`` turns that into a skip); these helpers check the rest: a folder where a file is
expected, ranges, counts.
"""
from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Any

from .errors import ConfigError

MAX_IMAGE_SIDE = 4096  # pixels: a 4096×4096 RGB float32 image is 200 MB before gradients and batches


def expect_file(params: dict[str, Any], key: str) -> None:
    """``params[key]`` (when given) is a file, not a folder (a missing path is reported by the config layer)."""
    p = params.get(key)
    if p is not None and Path(p).exists() and not Path(p).is_file():
        raise ConfigError(f"expected a file, got the folder {p}", key=key)


def expect_dir(params: dict[str, Any], key: str) -> None:
    """``params[key]`` (when given) is a folder, not a file."""
    p = params.get(key)
    if p is not None and Path(p).exists() and not Path(p).is_dir():
        raise ConfigError(f"expected a folder, got the file {p}", key=key)


def expect_range(params: dict[str, Any], key: str) -> None:
    """``params[key]`` (when given) is ``[lo, hi]`` with finite ``lo < hi``."""
    r = params.get(key)
    if r is None:
        return
    lo, hi = (float(v) for v in r)
    if not (math.isfinite(lo) and math.isfinite(hi)) or not lo < hi:
        raise ConfigError(f"expected [lo, hi] with lo < hi, got [{lo:g}, {hi:g}]", key=key)


def expect_at_least(params: dict[str, Any], key: str, minimum: float, what: str = "") -> None:
    """``params[key]`` (when given) is ``>= minimum``."""
    v = params.get(key)
    if v is not None and v < minimum:
        raise ConfigError(f"expected {what or 'a value'} >= {minimum:g}, got {v:g}", key=key)


def expect_nonempty_unique(params: dict[str, Any], key: str, hint: str) -> None:
    """A list parameter (when given) has at least one item and no repeats."""
    v = params.get(key)
    if v is None:
        return
    if not v:
        raise ConfigError(f"empty list; {hint}", key=key)
    seen = set()
    for item in v:
        if item in seen:
            raise ConfigError(f"{item!r} is listed twice", key=key)
        seen.add(item)


# Caps of attack and defense parameters, checked by their constructors (``validate`` builds them), so that
# a value no study needs (``kernel = 2^63``, ``sigma = 1e300``) is refused up front instead of hanging or
# crashing a run.
MAX_STEPS = 100_000        # iterations of an attack: steps, queries
MAX_RESTARTS = 1_000       # restarts of an attack
MAX_SAMPLES = 1_000_000    # noisy samples per image of a smoothing defense
MAX_KERNEL = 63            # pixels: a filter window, odd; padded, it still fits the smallest image (32 px)
MAX_BLUR_SIGMA = 10.0      # pixels: the ±3σ Gaussian kernel (61 px) still fits the smallest image (32 px)
MAX_NOISE_SIGMA = 10.0     # noise std on [0, 1] images (σ = 1 already drowns the image)
MAX_L2 = math.sqrt(3) * MAX_IMAGE_SIDE  # the L2 distance between a black and a white image of the largest size


class ParamRangeError(ConfigError, ValueError):
    """A constructor parameter outside its range: a ``ValueError`` to Python callers, and a ``ConfigError``
    whose ``key`` is the parameter, so that ``validate`` names ``defenses[0].kernel``."""


def within(name: str, value: Any, lo: float, hi: float, *, integer: bool = False, odd: bool = False,
           lo_open: bool = False, hi_open: bool = False) -> None:
    """A constructor's range check: ``value`` is a number (an integer, odd, when asked) within ``lo``..``hi``
    (ends excluded when ``lo_open``/``hi_open``); otherwise ``ValueError`` naming ``name``, the range and the
    value, as :class:`ParamRangeError` (``validate`` turns it into a one-line error naming ``<table>.<name>``)."""

    def num(v: float) -> str:
        return str(v) if isinstance(v, int) else f"{v:.6g}"

    kind = ("an odd integer" if odd else "an integer") if integer else "a number"
    interval = f"{num(lo)}..{num(hi)}" if integer else \
        ("(" if lo_open else "[") + f"{num(lo)}, {num(hi)}" + (")" if hi_open else "]")
    ok = isinstance(value, numbers.Integral if integer else numbers.Real) and not isinstance(value, bool)
    if ok:
        ok = (lo < value if lo_open else lo <= value) and (value < hi if hi_open else value <= hi)
        ok = ok and not (odd and value % 2 == 0)
    if not ok:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "…"
        raise ParamRangeError(f"{name} must be {kind} within {interval}, got {shown}", key=name)


__all__ = ["MAX_BLUR_SIGMA", "MAX_IMAGE_SIDE", "MAX_KERNEL", "MAX_L2", "MAX_NOISE_SIGMA", "MAX_RESTARTS",
           "MAX_SAMPLES", "MAX_STEPS", "ParamRangeError", "expect_at_least", "expect_dir", "expect_file",
           "expect_nonempty_unique", "expect_range", "within"]
