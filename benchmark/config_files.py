"""What ``validate`` opens besides the config (``load_config(deep=True)``; ``run`` does it before any work):
data tables and checkpoints, read safely, never an image decoded or a model run. See :func:`deep_check`.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config_values import one_line as _one_line
from .config_values import path_exists
from .errors import BenchmarkError, ConfigError, ErrorList, MissingWeightsError
from .registry import REGISTRIES

DEEP_FAMILIES = ("datasets", "metrics")  # attacks and defenses were built by the parse (their check_params)
WEIGHTS_FAMILIES = ("metrics", "defenses")  # whose path parameters name checkpoints

if TYPE_CHECKING:  # pragma: no cover
    from .config import MatrixConfig, PluginSpec


def paths(value: Any) -> list[Path]:
    """The paths in a parameter's value (itself, or the items of a list)."""
    return [v for v in (value if isinstance(value, (list, tuple)) else [value]) if isinstance(v, Path)]


def deep_check(cfg: MatrixConfig, where_of: Callable[[PluginSpec], str]) -> list[ConfigError]:
    """Everything that can be checked without decoding an image or running a model (``validate``, and ``run``
    before any work; ``where_of(spec)`` is the spec's table, ``metrics[0]``). Returns every error found by each
    dataset's and metric's ``check_files(params)``, the classmethod their base classes declare:

    - datasets are built: folders listed, score tables parsed and checked (repeated rows, absent images,
      MOS that are empty, not numbers, NaN or infinite; :mod:`benchmark.datasets.table`);
    - metrics are built on the meta device: their checkpoints read safely (``weights_only=True``) and their
      keys and shapes checked against the architecture, without allocating the network; a metric that
      needs more than its own files overrides it (pyiqa: the weight files it would fetch).

    Attacks and defenses were built by the parse already (their ``check_params``).
    """
    errs: list[ConfigError] = []
    for family in DEEP_FAMILIES:
        specs = getattr(cfg, family)
        had = bool(specs)
        for spec in list(specs):
            found = _build_errors(spec, where_of(spec), str(cfg.path),
                                  lambda s=spec: s.cls.check_files(s.resolved()))
            if found and spec.optional and all(getattr(e, "missing_file", False) for e in found):
                specs.remove(spec)  # an optional entry whose file is missing is left out, as the parse does
                cfg.skipped.append({"what": f"{REGISTRIES[family].kind} {spec.label}", "key": found[0].key or "",
                                    "reason": f"{REGISTRIES[family].kind} '{spec.name}': {found[0].detail} "
                                              f"(named by '{found[0].key}')"})
                continue
            errs += found
        if had and not specs:
            errs.append(ConfigError(f"every [[{family}]] entry is optional and unavailable", file=str(cfg.path),
                                    key=family))
    return errs


def _build_errors(spec: PluginSpec, where: str, fname: str, check: Callable[[], None]) -> list[ConfigError]:
    """``check()`` (``spec``'s ``check_files``); every problem it raises as a ConfigError naming the key."""
    kind = f"{REGISTRIES[spec.family].kind} '{spec.name}'"
    resolved = spec.resolved()
    weights = spec.family in WEIGHTS_FAMILIES  # its files are checkpoints: a failure may be one that is unreadable

    def key_for(text: str, key: str | None = None) -> str:
        if key:
            return key if key.startswith(where) else f"{where}.{key}"
        param = next((k for k, v in resolved.items() for p in paths(v) if str(p) in text), None)
        return f"{where}.{param}" if param else where

    try:
        check()
    except ErrorList as exc:  # e.g. every bad row of a MOS table: one line each
        found = [ConfigError(f"{kind}: {_one_line(e)}", file=fname, key=key_for(str(e), getattr(e, "key", None)))
                 for e in exc.errors]
        return found
    except ConfigError as exc:
        return [ConfigError(f"{kind}: {exc.detail}", file=exc.file or fname, key=key_for(exc.detail, exc.key))]
    except MissingWeightsError as exc:
        text = file_problem(resolved, kind) if weights and path_exists(Path(exc.path)) else None  # unreadable
        err = ConfigError(text[1] if text else _one_line(exc), file=fname,
                          key=f"{where}.{text[0]}" if text else key_for(str(exc.path), exc.key))
        err.missing_file = text is None  # type: ignore[attr-defined]  (an optional entry is then skipped)
        return [err]
    except BenchmarkError as exc:
        return [ConfigError(_one_line(exc), file=fname, key=key_for(str(exc)))]
    except Exception as exc:  # noqa: BLE001 - a file it read may be the cause: then that file is the message
        text = file_problem(resolved, kind) if weights else None
        if text:
            return [ConfigError(text[1], file=fname, key=f"{where}.{text[0]}")]
        return [ConfigError(f"invalid value for {kind}: {_joined(exc)}", file=fname, key=where)]
    return []


def _joined(exc: Exception) -> str:
    """An exception's whole message on one line (``load_state_dict`` lists its missing keys on the next lines)."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
    text = text if len(text) <= 400 else text[:400] + "…"
    return text if isinstance(exc, (ValueError, TypeError)) else f"{type(exc).__name__}: {text}"


def file_problem(resolved: dict[str, Any], what: str) -> tuple[str, str] | None:
    """(parameter, message) of the first file a path parameter names that is not a readable plain torch
    checkpoint (opened with ``weights_only=True``, tensors mapped, not read), or None."""
    from .weights import load_checkpoint

    for k, v in resolved.items():
        for p in paths(v):
            if path_exists(p) and not p.is_dir():
                try:
                    load_checkpoint(p, what, mmap=True)
                except BenchmarkError as exc:
                    return k, _one_line(exc)
    return None


def release_hint(family: str, cls: type, resolved: dict[str, Any], path: Path) -> str:
    """What a metric or defense says about a missing file it needs (where its release lives, where to put
    it): the hint of the MissingWeightsError its ``check_files`` raises with the file absent (by default built
    on the meta device: nothing allocated); "" if none, and for datasets and attacks, which name no weights."""
    if family not in WEIGHTS_FAMILIES:
        return ""
    try:
        cls.check_files(resolved)
    except MissingWeightsError as exc:
        return (exc.hint or "") if str(path) in str(exc.path) or str(exc.path) in str(path) else ""
    except Exception:  # noqa: BLE001 - it says nothing more about the file
        return ""
    return ""
