"""Small generic plugin registries.

Plugins register themselves with a decorator in their own module; third-party packages use the
entry-point group ``benchmark.<kind>`` (e.g. ``benchmark.defenses``); a config can name local files
in ``plugins = ["my_defense.py"]``. Registering a second, different object under a taken name is an
error (never a silent overwrite), and an unknown name answers with the closest registered names.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
import inspect
import logging
import math
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar, get_type_hints

from .errors import ConfigError, PluginError
from .seeds import digest_seed

log = logging.getLogger(__name__)
T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of plugin classes of one kind (``"metric"``, ``"attack"``, ...)."""

    def __init__(self, kind: str, plural: str):
        self.kind = kind
        self.plural = plural
        self.entry_point_group = f"benchmark.{plural}"
        self._items: dict[str, type[T]] = {}
        self._entry_points_loaded = False

    # -- registration -------------------------------------------------------------------------
    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator: ``@DEFENSES.register("jpeg")``."""

        def deco(cls: type[T]) -> type[T]:
            self.add(name, cls)
            return cls

        return deco

    def add(self, name: str, cls: type[T]) -> None:
        existing = self._items.get(name)
        if existing is not None and not _same_class(existing, cls):
            raise PluginError(
                f"{self.kind} '{name}' is already registered by {existing.__module__}.{existing.__qualname__}; "
                f"refusing to overwrite it with {cls.__module__}.{cls.__qualname__} (choose another name)"
            )
        cls.plugin_name = name  # type: ignore[attr-defined]
        self._items[name] = cls

    # -- lookup -------------------------------------------------------------------------------
    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in importlib.metadata.entry_points(group=self.entry_point_group):
            try:
                obj = ep.load()
            except Exception as exc:  # a broken third-party plugin must not break the others
                log.warning("could not load %s entry point %r (%s): %s", self.kind, ep.name, ep.value, exc)
                continue
            if ep.name not in self._items:
                self.add(ep.name, obj)

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._items)

    def get(self, name: str) -> type[T]:
        self._load_entry_points()
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._items, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(
                f"unknown {self.kind} '{name}'{hint} (registered: {', '.join(sorted(self._items))})"
            ) from None

    def __contains__(self, name: str) -> bool:
        self._load_entry_points()
        return name in self._items

    def describe(self, name: str) -> dict[str, Any]:
        """Name, summary line and constructor parameters (with defaults) of one plugin."""
        cls = self.get(name)
        doc = inspect.getdoc(cls) or ""
        params = []
        for p, ann, default in constructor_params(cls):
            required = default is inspect.Parameter.empty
            params.append({"name": p, "type": _type_name(ann), "default": None if required else default,
                           "default_text": "required" if required else value_text(default),
                           "required": required})
        return {"name": name, "summary": doc.splitlines()[0] if doc else "", "params": params,
                "class": f"{cls.__module__}.{cls.__qualname__}"}


def number_text(v: float) -> str:
    """A float as people write it: ``0.5`` when a short decimal is exact, ``8/255`` when the value is
    exactly ``k/255`` (or ``k/510``, ``k/1020``: pixel-level budgets), else its shortest repr."""
    if not math.isfinite(v):
        return str(v)
    short = f"{v:g}"
    if float(short) == v:
        return short
    for d in (255, 510, 1020):
        frac = Fraction(v).limit_denominator(d)
        if float(frac) == v and d % frac.denominator == 0:
            return f"{frac.numerator * (d // frac.denominator)}/{d}"
    return repr(v)


def value_text(v: Any) -> str:
    """A default value as ``list`` prints it (TOML-like: ``8/255``, ``true``, ``"linf"``, ``[1, 3]``)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return number_text(v)
    if v is None:
        return "none"
    if isinstance(v, (str, Path)):
        return f'"{v}"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value_text(x) for x in v) + "]"
    return str(v)


def _same_class(a: type, b: type) -> bool:
    # Re-importing the same file (e.g. a plugin file named twice) yields a new class object.
    return a is b or (a.__qualname__ == b.__qualname__ and a.__module__ == b.__module__)


def _type_name(ann: Any) -> str:
    from typing import Literal, get_args, get_origin

    if get_origin(ann) is Literal:
        return "one of " + "|".join(map(str, get_args(ann)))
    return getattr(ann, "__name__", None) or str(ann).replace("typing.", "")


def constructor_params(cls: type) -> list[tuple[str, Any, Any]]:
    """``(name, annotation, default)`` for each keyword the plugin's constructor takes."""
    sig = inspect.signature(cls.__init__)
    try:
        hints = get_type_hints(cls.__init__)
    except Exception:  # unresolved forward references: fall back to raw annotations
        hints = {}
    out = []
    for p in list(sig.parameters.values())[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        out.append((p.name, hints.get(p.name, p.annotation), p.default))
    return out


def load_plugin_file(path: Path) -> None:
    """Import a local plugin file so that its decorators register its classes."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"plugin file not found: {path}")
    mod_name = f"benchmark_local_plugin_{path.stem}_{digest_seed(str(path.resolve())) % 10**8}"  # same in every process
    if mod_name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import plugin file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except PluginError:
        raise
    except Exception as exc:
        del sys.modules[mod_name]
        raise ConfigError(f"plugin file {path} failed to import: {type(exc).__name__}: {exc}") from exc


DATASETS: Registry = Registry("dataset", "datasets")
METRICS: Registry = Registry("metric", "metrics")
ATTACKS: Registry = Registry("attack", "attacks")
DEFENSES: Registry = Registry("defense", "defenses")
REGISTRIES = {"datasets": DATASETS, "metrics": METRICS, "attacks": ATTACKS, "defenses": DEFENSES}


def load_builtin_plugins() -> None:
    """Import the built-in plugin modules (cheap: heavy libraries are imported lazily)."""
    for pkg in ("datasets", "metrics", "attacks", "defenses"):
        importlib.import_module(f"benchmark.{pkg}")
