"""``matrix.toml``: read with tomllib, validated at the boundary into typed objects.

Every plugin entry is a table with ``name`` and the plugin's constructor keywords. A list given for a
scalar keyword expands into a product (``eps = ["4/255", "8/255"]`` gives two attacks); ``"8/255"`` is
accepted wherever a number is expected. Unknown keys are errors. Relative paths of input files
(plugin parameters typed as paths, ``run.plugins``) are resolved against the config file's folder;
``run.output_dir`` against the current directory.
"""
from __future__ import annotations

import difflib
import inspect
import itertools
import json
import sys
import types
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .errors import ConfigError
from .registry import REGISTRIES, Registry, constructor_params, load_builtin_plugins, load_plugin_file

SIZE_POLICIES = ("resize", "center_crop", "keep")
RUN_KEYS = {"name", "output_dir", "device", "batch_size", "seed", "image_size", "size_policy", "plugins", "lpips", "dists"}
ENTRY_META_KEYS = {"name", "label", "optional", "adaptive", "eot_samples"}
ATTACK_ONLY_KEYS = ("adaptive", "eot_samples")
CHEAP_FAMILIES = ("attacks", "defenses")


@dataclass(frozen=True)
class PluginSpec:
    """One resolved plugin instance of the matrix: its kind, registered name and typed parameters."""

    family: str  # "datasets", "metrics", "attacks", "defenses"
    name: str
    params: dict[str, Any]
    label: str
    optional: bool = False
    adaptive: bool = False   # attacks only: attack metric ∘ defense (EOT/BPDA), once per defense
    eot_samples: int = 1     # attacks only: EOT draws of a stochastic defense's randomness

    def key(self) -> dict[str, Any]:
        """What determines this plugin's output (used in content hashes)."""
        key = {"name": self.name, "params": _jsonable(self.params)}
        if self.adaptive:
            key["adaptive"] = {"eot_samples": self.eot_samples}
        return key

    @property
    def cls(self) -> type:
        return REGISTRIES[self.family].get(self.name)

    def build(self) -> Any:
        return self.cls(**self.params)


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


@dataclass(frozen=True)
class MatrixConfig:
    path: Path
    run: RunSettings
    datasets: list[PluginSpec]
    metrics: list[PluginSpec]
    attacks: list[PluginSpec]
    defenses: list[PluginSpec]
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def n_cells(self) -> int:
        return len(self.datasets) * len(self.metrics) * len(self.attacks) * len(self.defenses)


# --------------------------------------------------------------------------------------------
def load_config(path: str | Path) -> MatrixConfig:
    path = Path(path)
    fname = str(path)
    if not path.is_file():
        raise ConfigError("config file not found", file=fname)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=fname) from None
    except UnicodeDecodeError:
        raise ConfigError("not a UTF-8 text file", file=fname) from None
    return parse_config(raw, path)


def parse_config(raw: dict[str, Any], path: Path) -> MatrixConfig:
    fname, base = str(path), path.resolve().parent
    unknown = set(raw) - {"run", *REGISTRIES}
    if unknown:
        raise ConfigError(f"unknown top-level key(s) {sorted(unknown)}; expected [run], [[datasets]], "
                          "[[metrics]], [[attacks]], [[defenses]]", file=fname, key=sorted(unknown)[0])
    run = _parse_run(raw.get("run", {}), fname, base, default_name=path.stem)
    load_builtin_plugins()
    for plugin in run.plugins:
        try:
            load_plugin_file(plugin)
        except ConfigError as exc:
            raise ConfigError(exc.detail, file=fname, key="run.plugins") from None
    families = {}
    for family, registry in REGISTRIES.items():
        entries = raw.get(family)
        if entries is None:
            raise ConfigError(f"missing section [[{family}]] (at least one entry with a 'name')", file=fname,
                              key=family)
        if isinstance(entries, dict):
            entries = [entries]
        if not isinstance(entries, list) or not entries:
            raise ConfigError(f"expected one or more [[{family}]] tables", file=fname, key=family)
        specs: list[PluginSpec] = []
        for i, entry in enumerate(entries):
            specs.extend(_parse_entry(family, registry, entry, f"{family}[{i}]", fname, base))
        labels = [s.label for s in specs]
        dup = {x for x in labels if labels.count(x) > 1}
        if dup:
            raise ConfigError(f"duplicate entries {sorted(dup)}; give them distinct parameters or a 'label'",
                              file=fname, key=family)
        families[family] = specs
    return MatrixConfig(path=path, run=run, raw=raw, **families)


def _parse_run(run: Any, fname: str, base: Path, default_name: str) -> RunSettings:
    if not isinstance(run, dict):
        raise ConfigError("expected a table", file=fname, key="run")
    unknown = set(run) - RUN_KEYS
    if unknown:
        raise ConfigError(f"unknown key; expected one of {sorted(RUN_KEYS)}", file=fname,
                          key=f"run.{sorted(unknown)[0]}")

    def get(key: str, ann: Any, default: Any) -> Any:
        return coerce(run[key], ann, fname, f"run.{key}", base) if key in run else default

    size = run.get("image_size", 256)
    if size == "keep":
        image_size = None
    else:
        if isinstance(size, int) and not isinstance(size, bool):
            size = [size, size]
        image_size = tuple(coerce(size, tuple[int, int], fname, "run.image_size", base))
        if min(image_size) < 32:
            raise ConfigError(f"expected sizes >= 32 or \"keep\", got {size!r}", file=fname, key="run.image_size")
    policy = get("size_policy", str, "resize" if image_size else "keep")
    if policy not in SIZE_POLICIES:
        raise ConfigError(f"expected one of {SIZE_POLICIES}, got {policy!r}", file=fname, key="run.size_policy")
    batch = get("batch_size", int, 4)
    if batch < 1:
        raise ConfigError(f"expected a positive integer, got {batch}", file=fname, key="run.batch_size")
    plugins = tuple(Path(p) for p in get("plugins", list[Path], []))
    return RunSettings(
        name=get("name", str, default_name), output_dir=Path(get("output_dir", str, "runs")),
        device=get("device", str, "cpu"), batch_size=batch, seed=get("seed", int, 0),
        image_size=image_size, size_policy=policy, plugins=plugins, lpips=get("lpips", bool, False),
        dists=get("dists", bool, False),
    )


def _parse_entry(family: str, registry: Registry, entry: Any, where: str, fname: str, base: Path) -> list[PluginSpec]:
    if not isinstance(entry, dict):
        raise ConfigError("expected a table with a 'name'", file=fname, key=where)
    if "name" not in entry:
        raise ConfigError("missing required key 'name'", file=fname, key=f"{where}.name")
    name = entry["name"]
    if not isinstance(name, str):
        raise ConfigError(f"expected a string, got {name!r}", file=fname, key=f"{where}.name")
    try:
        cls = registry.get(name)
    except ConfigError as exc:
        raise ConfigError(exc.detail, file=fname, key=f"{where}.name") from None
    params = {p: (ann, default) for p, ann, default in constructor_params(cls)}
    given = {k: v for k, v in entry.items() if k not in ENTRY_META_KEYS}
    for k in given:
        if k not in params:
            close = difflib.get_close_matches(k, params, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"unknown parameter for {registry.kind} '{name}'{hint}; expected one of "
                              f"{sorted(params)}", file=fname, key=f"{where}.{k}")
    missing = [p for p, (_, d) in params.items() if d is _EMPTY and p not in given]
    if missing:
        raise ConfigError(f"{registry.kind} '{name}' needs parameter '{missing[0]}'", file=fname,
                          key=f"{where}.{missing[0]}")
    optional = entry.get("optional", False)
    if not isinstance(optional, bool):
        raise ConfigError("expected true or false", file=fname, key=f"{where}.optional")
    for k in ATTACK_ONLY_KEYS:
        if k in entry and family != "attacks":
            raise ConfigError(f"'{k}' applies to attacks only", file=fname, key=f"{where}.{k}")
    adaptive = entry.get("adaptive", False)
    if not isinstance(adaptive, bool):
        raise ConfigError("expected true or false", file=fname, key=f"{where}.adaptive")
    eot = entry.get("eot_samples", 1)
    if isinstance(eot, bool) or not isinstance(eot, int) or eot < 1:
        raise ConfigError(f"expected a positive integer, got {eot!r}", file=fname, key=f"{where}.eot_samples")
    label = entry.get("label")
    if label is not None and not isinstance(label, str):
        raise ConfigError("expected a string", file=fname, key=f"{where}.label")
    # A list given for a parameter that is not itself a sequence expands into a product.
    axes = []
    for k, v in given.items():
        ann = params[k][0]
        expands = isinstance(v, list) and not _is_sequence_type(ann)
        if expands and not v:
            raise ConfigError("empty list", file=fname, key=f"{where}.{k}")
        values = v if expands else [v]
        axes.append([(k, coerce(x, ann, fname, f"{where}.{k}", base)) for x in values])
    specs = []
    for combo in itertools.product(*axes) if axes else [()]:
        p = dict(combo)
        shown = ",".join(f"{k}={_short(v)}" for k, v in p.items() if k in given)
        lab = label or (f"{name}({shown})" if shown else name)
        if label and len(list(itertools.product(*axes))) > 1:
            lab = f"{label}({shown})"
        if adaptive and not label:
            lab += f"+adaptive(EOT{eot})" if eot > 1 else "+adaptive"
        spec = PluginSpec(family=family, name=name, params=p, label=lab, optional=optional, adaptive=adaptive,
                          eot_samples=eot)
        if family in CHEAP_FAMILIES:
            # Attacks and defenses are cheap to construct: check their values now, not mid-run.
            try:
                spec.build()
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"invalid value for {registry.kind} '{name}': {exc}", file=fname,
                                  key=where) from None
        specs.append(spec)
    return specs


_EMPTY = inspect.Parameter.empty


def _short(v: Any) -> str:
    if isinstance(v, float):
        frac = Fraction(v).limit_denominator(1020)
        if frac.denominator in (255, 510, 1020) and abs(float(frac) - v) < 1e-12:
            return f"{frac.numerator}/{frac.denominator}"  # budgets read as k/255
        return f"{v:g}"
    if isinstance(v, Path):
        return v.name
    return str(v)


def _is_sequence_type(ann: Any) -> bool:
    origin = get_origin(ann)
    if origin in (Union, types.UnionType):
        return any(_is_sequence_type(a) for a in get_args(ann) if a is not type(None))
    return origin in (list, tuple) or ann in (list, tuple)


def coerce(value: Any, ann: Any, fname: str, key: str, base: Path) -> Any:
    """Check ``value`` against the annotation ``ann`` and convert it; raise ConfigError naming the key."""

    def fail(expected: str) -> ConfigError:
        return ConfigError(f"expected {expected}, got {value!r}", file=fname, key=key)

    if ann is _EMPTY or ann is Any:
        return value
    origin = get_origin(ann)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(ann) if a is not type(None)]
        for a in args:
            try:
                return coerce(value, a, fname, key, base)
            except ConfigError:
                continue
        raise fail(" or ".join(_type_name(a) for a in args))
    if origin is Literal:
        if value not in get_args(ann):
            raise fail(f"one of {list(get_args(ann))}")
        return value
    if origin in (list, tuple) or ann in (list, tuple):
        if not isinstance(value, list):
            raise fail("a list")
        args = get_args(ann)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise fail(f"a list of {len(args)} values")
            return tuple(coerce(v, a, fname, key, base) for v, a in zip(value, args))
        item = args[0] if args else Any
        out = [coerce(v, item, fname, key, base) for v in value]
        return tuple(out) if origin is tuple else out
    if ann is dict or origin is dict:
        if not isinstance(value, dict):
            raise fail("a table")
        return value
    if ann is bool:
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if ann is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("an integer")
        return value
    if ann is float:
        if isinstance(value, bool):
            raise fail("a number")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(Fraction(value.replace(" ", "")))
            except (ValueError, ZeroDivisionError):
                pass
        raise fail('a number or a fraction such as "8/255"')
    if ann is str:
        if not isinstance(value, str):
            raise fail("a string")
        return value
    if ann is Path:
        if not isinstance(value, str):
            raise fail("a path (string)")
        p = Path(value).expanduser()
        return (p if p.is_absolute() else (base / p)).resolve()
    return value


def _type_name(a: Any) -> str:
    return getattr(a, "__name__", str(a))


def _jsonable(v: Any) -> Any:
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in sorted(v.items())}
    return v


def describe_config(cfg: MatrixConfig) -> str:
    lines = [f"{cfg.path}: valid; {cfg.n_cells} cells "
             f"({len(cfg.datasets)} datasets x {len(cfg.metrics)} metrics x {len(cfg.attacks)} attacks x "
             f"{len(cfg.defenses)} defenses)"]
    for fam in REGISTRIES:
        for s in getattr(cfg, fam):
            lines.append(f"  {fam[:-1]:8s} {s.label}: {json.dumps(_jsonable(s.params))}")
    return "\n".join(lines)


__all__ = ["MatrixConfig", "PluginSpec", "RunSettings", "load_config", "parse_config", "coerce",
           "describe_config"]
