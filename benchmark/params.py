"""Checks of plugin parameters that ``validate`` runs before any work: one route for the four families.

Every family's base class (``Dataset``, ``Metric``, ``Attack``, ``Defense``) declares the classmethod
``check_params(cls, params, base) -> dict``, and the config layer calls it for every entry of a matrix,
after it has bound the table's keys to the constructor's signature (unknown and missing keys are its errors)
and typed the values (numbers are numbers, paths absolute ``Path`` objects). It receives the parameters with
defaults filled in, raises :class:`~benchmark.errors.ConfigError` with ``key=<parameter>`` for a bad value
(the config layer adds the file and the table, ``metrics[0].weights``), and returns the parameters to use
(normalised where a plugin has two spellings of one thing). ``base`` is the config file's folder, for
relative paths inside free-form tables such as pyiqa's ``options``. The families' defaults:

- datasets and metrics, whose constructors read data or weights: checks without I/O but ``stat`` (here:
  ``expect_file``, ``expect_range``, ...; a dataset's ``limit`` is at least 1);
- attacks and defenses, cheap to construct: :func:`checked_by_building`, the constructor itself (its range
  checks, :func:`within`, :func:`at_least`), unless a file it names is missing.

A plugin overrides ``check_params`` and calls ``super()``. Files of path-typed parameters that do not exist
are found by the config layer for every plugin (``optional = true`` turns that into a skip); these helpers
check the rest: a folder where a file is expected (or a device, a FIFO: never opened), ranges, counts.

``validate`` then opens what the datasets and metrics read (:mod:`benchmark.config_files`), through the
classmethod ``check_files(cls, params)`` their base classes declare: a dataset is built (folders listed,
score tables parsed), a metric built on the meta device (:func:`build_on_meta`: checkpoints read safely,
keys and shapes checked, nothing allocated). A metric whose building would need more than its own files
(pyiqa: backbones) overrides it, raising :class:`~benchmark.errors.MissingWeightsError` for a file it cannot
find. Lower bounds that an operation needs (a blur's sigma) are checked with :func:`at_least`.
"""
from __future__ import annotations

import inspect
import math
import numbers
import os
import stat
from pathlib import Path
from typing import Any, Callable

from .errors import ConfigError

MAX_IMAGE_SIDE = 4096  # pixels: a 4096×4096 RGB float32 image is 200 MB before gradients and batches


def file_kind(path: Path) -> str:
    """What ``path`` is, for messages: "a folder", "a regular file", "a character device (such as /dev/zero)",
    "a named pipe (FIFO)", ... (``stat`` only: a FIFO is never opened, which would block)."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return "missing or unreadable"
    for test, what in ((stat.S_ISDIR, "a folder"), (stat.S_ISREG, "a regular file"),
                       (stat.S_ISCHR, "a character device (such as /dev/zero)"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return "not a regular file"


def expect_file(params: dict[str, Any], key: str) -> None:
    """``params[key]`` (when given) is a regular file, not a folder, a device or a FIFO (a missing path is
    reported by the config layer)."""
    p = params.get(key)
    if p is not None and Path(p).exists() and not Path(p).is_file():
        kind = file_kind(Path(p))
        raise ConfigError(f"expected a file, got the folder {p}" if kind == "a folder" else
                          f"expected a regular file, but {p} is {kind}", key=key)


def expect_dir(params: dict[str, Any], key: str) -> None:
    """``params[key]`` (when given) is a folder, not a file."""
    p = params.get(key)
    if p is not None and Path(p).exists() and not Path(p).is_dir():
        kind = file_kind(Path(p))
        raise ConfigError(f"expected a folder, got the file {p}" if kind == "a regular file" else
                          f"expected a folder, but {p} is {kind}", key=key)


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


def named_paths(params: dict[str, Any]) -> list[Path]:
    """The paths the parameters name (a path-typed value, or the paths in a list)."""
    return [v for value in params.values() for v in (value if isinstance(value, (list, tuple)) else [value])
            if isinstance(v, Path)]


def bind(cls: type, params: dict[str, Any], *, partial: bool = False) -> None:
    """``params`` fit the constructor's signature (a ``TypeError`` naming the keyword otherwise; ``partial``: some
    of them, as a constructor checking a few of its own values passes). The config layer checks this with its
    own messages before any ``check_params``; this is for a caller that checks parameters alone."""
    sig = inspect.signature(cls)
    sig.bind_partial(**params) if partial else sig.bind(**params)


def checked_by_building(cls: type, params: dict[str, Any]) -> dict[str, Any]:
    """The ``check_params`` of a plugin that is cheap to construct (attacks, defenses): the signature bound and
    the constructor called, so that its own checks (ranges with :func:`within`, files it opens) run before any
    work rather than mid-run. Not built when a path it names is missing: the config layer reports that file
    (or leaves an ``optional`` entry out)."""
    bind(cls, params)
    if all(_exists(p) for p in named_paths(params)):
        cls(**params)
    return params


def build_on_meta(build: Callable[[], Any]) -> Any:
    """``build()`` under ``torch.device("meta")``: modules get shapes but no memory, ``load_state_dict`` still
    checks keys and shapes. A constructor that needs real values (``.item()``) is built for real instead."""
    import warnings

    import torch

    from .errors import BenchmarkError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "copying from a non-meta parameter ... is a no-op": the point here
        try:
            with torch.device("meta"):
                return build()
        except BenchmarkError:
            raise
        except Exception:  # noqa: BLE001 - an operation the meta device cannot do: decide on the CPU
            pass
        return build()


def _exists(p: Path) -> bool:
    try:
        return p.exists()
    except (OSError, ValueError):  # a name the system refuses (too long, ...)
        return False


# Caps of attack and defense parameters, checked by their constructors (``validate`` builds them), so that
# a value no study needs (``kernel = 2^63``, ``sigma = 1e300``) is refused up front instead of hanging or
# crashing a run.
MAX_STEPS = 100_000        # iterations of an attack: steps, queries
MAX_RESTARTS = 1_000       # restarts of an attack
MAX_SAMPLES = 1_000_000    # noisy samples per image of a smoothing defense
MAX_KERNEL = 63            # pixels: a filter window, odd; padded, it still fits the smallest image (32 px)
MAX_BLUR_SIGMA = 10.0      # pixels: the ±3σ Gaussian kernel (61 px) still fits the smallest image (32 px)
# pixels: below it a Gaussian kernel's off-centre weights exp(-1/(2σ²)) fall under float32's resolution (2^-24
# relative to the centre weight), so the blur returns its input: σ = 1/sqrt(48 ln 2) ≈ 0.1734
MIN_BLUR_SIGMA = 1.0 / math.sqrt(48 * math.log(2))
BLUR_SIGMA_WHY = ("below it the Gaussian kernel's off-centre weights are under float32 resolution and the blur "
                  "returns its input; use the identity defense for no blur")
# intensity: a bilateral filter's colour weights are exp(-d²/(2σ²)) with -1/(2σ²) a float32 factor; below
# sqrt(0.5 / float32 max) ≈ 3.83e-20 that factor overflows and the centre pixel's weight is 0·inf = NaN
MIN_SIGMA_COLOR = math.sqrt(0.5 / 3.4028234663852886e38)
MAX_NOISE_SIGMA = 10.0     # noise std on [0, 1] images (σ = 1 already drowns the image)
MAX_L2 = math.sqrt(3) * MAX_IMAGE_SIDE  # the L2 distance between a black and a white image of the largest size


def at_least(name: str, value: float, minimum: float, why: str) -> None:
    """A lower bound that an operation needs (beside ``within``'s range): ``ParamRangeError`` naming ``name``,
    the bound, why it is needed, and the value."""
    if value < minimum:
        raise ParamRangeError(f"{name} must be at least {minimum:.4g} ({why}), got {value!r}", key=name)


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


__all__ = ["BLUR_SIGMA_WHY", "at_least", "MIN_BLUR_SIGMA", "MIN_SIGMA_COLOR", "file_kind", "MAX_BLUR_SIGMA",
           "MAX_IMAGE_SIDE", "MAX_KERNEL", "MAX_L2", "MAX_NOISE_SIGMA", "MAX_RESTARTS", "MAX_SAMPLES", "MAX_STEPS",
           "ParamRangeError", "bind", "build_on_meta", "checked_by_building", "expect_at_least", "expect_dir",
           "expect_file", "expect_nonempty_unique", "expect_range", "named_paths", "within"]
