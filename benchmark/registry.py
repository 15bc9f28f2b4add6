"""Small generic plugin registries.

Plugins register themselves with a decorator in their own module; the built-in ones are found by module
convention (every module of ``benchmark/<family>/`` is imported, :func:`load_builtin_plugins`: a new plugin
file needs no import list, and a helper module simply registers nothing); third-party packages use the
entry-point group ``benchmark.<kind>`` (e.g. ``benchmark.defenses``); a config can name local files in
``plugins = ["my_defense.py"]``. A registered class must derive from its family's base class (which declares
every capability the harness reads, with its default); registering a second, different object under a taken
name is an error (never a silent overwrite), and an unknown name answers with the closest registered names.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
import inspect
import logging
import math
import pkgutil
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar, get_type_hints

from .errors import ConfigError, PluginError
from .seeds import digest_seed

log = logging.getLogger(__name__)
T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of plugin classes of one kind (``"metric"``, ``"attack"``, ...).

    ``base`` (``"module:Class"``, imported when the first class is registered, so that this module imports no
    plugin family) is the class every registered class must derive from; None accepts any class. ``package``
    (``"benchmark.defenses"``) holds the built-in plugins: every module of it is imported on the first lookup
    (:meth:`load`), then the entry points of the group ``benchmark.<plural>``."""

    def __init__(self, kind: str, plural: str, base: str | None = None, package: str | None = None):
        self.kind = kind
        self.plural = plural
        self.entry_point_group = f"benchmark.{plural}"
        self.base = base
        self.package = package
        self._items: dict[str, type[T]] = {}
        self._loaded = False

    def base_class(self) -> type | None:
        """The class every registered class derives from (``base`` imported), or None."""
        if self.base is None:
            return None
        module, _, name = self.base.partition(":")
        return getattr(importlib.import_module(module), name)

    # -- registration -------------------------------------------------------------------------
    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator: ``@DEFENSES.register("jpeg")``."""

        def deco(cls: type[T]) -> type[T]:
            self.add(name, cls)
            return cls

        return deco

    def add(self, name: str, cls: type[T]) -> None:
        """Register ``cls`` under ``name``: a :class:`PluginError` when it does not derive from the family's base
        class or when the name is taken by another class."""
        base = self.base_class()
        if base is not None and not (isinstance(cls, type) and issubclass(cls, base)):
            shown = f"{cls.__module__}.{cls.__qualname__}" if isinstance(cls, type) else repr(cls)
            raise PluginError(
                f"{self.kind} '{name}': {shown} must derive from {base.__module__}.{base.__qualname__}, the "
                f"{self.kind} contract that declares every capability the harness reads, with its default "
                f"(class {getattr(cls, '__name__', 'Plugin')}({base.__name__}): ...)")
        existing = self._items.get(name)
        if existing is not None and not _same_class(existing, cls):
            raise PluginError(
                f"{self.kind} '{name}' is already registered by {existing.__module__}.{existing.__qualname__}; "
                f"refusing to overwrite it with {cls.__module__}.{cls.__qualname__} (choose another name)"
            )
        cls.plugin_name = name  # type: ignore[attr-defined]
        self._items[name] = cls

    # -- lookup -------------------------------------------------------------------------------
    def load(self) -> None:
        """Import every module of ``package`` (by convention: a plugin module registers its classes, a helper module
        registers nothing), then the entry points (a name a built-in holds stays the built-in's). Once."""
        if self._loaded:
            return
        self._loaded = True
        if self.package is not None:
            package = importlib.import_module(self.package)
            for module in pkgutil.iter_modules(package.__path__):
                importlib.import_module(f"{self.package}.{module.name}")
        for ep in importlib.metadata.entry_points(group=self.entry_point_group):
            try:
                obj = ep.load()
            except Exception as exc:  # a broken third-party plugin must not break the others
                log.warning("could not load %s entry point %r (%s): %s", self.kind, ep.name, ep.value, exc)
                continue
            if ep.name not in self._items:
                try:
                    self.add(ep.name, obj)
                except PluginError as exc:  # not a plugin of this family: left out, as a broken one is
                    log.warning("could not register %s entry point %r (%s): %s", self.kind, ep.name, ep.value, exc)

    def names(self) -> list[str]:
        self.load()
        return sorted(self._items)

    def get(self, name: str) -> type[T]:
        self.load()
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._items, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(
                f"unknown {self.kind} '{name}'{hint} (registered: {', '.join(sorted(self._items))})"
            ) from None

    def __contains__(self, name: str) -> bool:
        self.load()
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
    except PluginError:  # said as it is (a taken name, a class not derived from its base); importable again
        del sys.modules[mod_name]
        raise
    except Exception as exc:
        del sys.modules[mod_name]
        raise ConfigError(f"plugin file {path} failed to import: {type(exc).__name__}: {exc}") from exc


def _family(kind: str, plural: str, base: str) -> Registry:
    return Registry(kind, plural, f"benchmark.{plural}.base:{base}", f"benchmark.{plural}")


DATASETS: Registry = _family("dataset", "datasets", "Dataset")
METRICS: Registry = _family("metric", "metrics", "Metric")
ATTACKS: Registry = _family("attack", "attacks", "Attack")
DEFENSES: Registry = _family("defense", "defenses", "Defense")
REGISTRIES = {"datasets": DATASETS, "metrics": METRICS, "attacks": ATTACKS, "defenses": DEFENSES}


def load_builtin_plugins() -> None:
    """Every family's built-in plugins and entry points (:meth:`Registry.load`: each module of ``benchmark/datasets``,
    ``metrics``, ``attacks``, ``defenses`` imported, so a new plugin file needs no import list). Cheap: plugins
    import heavy libraries lazily. Local files (``plugins = [...]``) are loaded by :func:`load_plugin_file`."""
    for registry in REGISTRIES.values():
        registry.load()
