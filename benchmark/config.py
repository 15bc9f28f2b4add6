"""``matrix.toml``: read with tomllib, validated at the boundary into typed objects.

Every plugin entry is a table with ``name`` and the plugin's constructor keywords. A list given for a
scalar keyword expands into a product (``eps = ["4/255", "8/255"]`` gives two attacks); ``"8/255"`` is
accepted wherever a number is expected. Unknown keys are errors. Relative paths of input files
(plugin parameters typed as paths, ``run.plugins``) are resolved against the config file's folder;
``run.output_dir`` against the current directory.

Validation does everything that needs no data and no model: types and ranges of every value (finite
numbers, 64-bit integers, at most ``MAX_DEPTH`` levels of nesting), the device, every file or folder a
path-typed parameter names (an ``optional`` entry whose file is missing is left out, with the reason in
``MatrixConfig.skipped``), each plugin class's ``check_params`` (:mod:`benchmark.params`), and attacks and
defenses are built. Parameters are canonical: a value equal to the default is dropped, so ``jpeg`` and
``jpeg(quality=50)`` are the same entry (duplicates are errors) with the same label and content key.
"""
from __future__ import annotations

import difflib
import inspect
import itertools
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .attacked import FORMATS as ATTACKED_FORMATS
from .config_values import MAX_DEPTH, check_tree as _check_tree, coerce, exc_text as _exc_text
from .config_values import is_sequence_type as _is_sequence_type, join_key as _join, jsonable as _jsonable
from .config_values import label_text as _short, one_line as _one_line, path_exists
from .config_values import same_value as _same, show as _show
from .errors import ConfigError, MissingWeightsError
from .executors import EXECUTORS
from .params import MAX_IMAGE_SIDE
from .registry import REGISTRIES, Registry, constructor_params, load_builtin_plugins, load_plugin_file

SIZE_POLICIES = ("resize", "center_crop", "keep")
RUN_KEYS = {"name", "output_dir", "device", "batch_size", "seed", "image_size", "size_policy", "plugins", "lpips",
            "dists", "attacked_images", "executor", "ray_address"}

CHEAP_FAMILIES = ("attacks", "defenses")
MAX_EXPANSION = 1000     # plugin instances one table may expand into (the product of its lists)
_EMPTY = inspect.Parameter.empty

# The keys every table accepts besides its plugin's parameters (``python -m benchmark list`` shows them).
TABLE_KEYS: dict[str, tuple[str, str, str]] = {  # key: (type, default, one-line explanation)
    "name": ("str", "required", "the registered plugin name"),
    "label": ("str", "name(parameters)", "the name shown in tables and the leaderboard; the default lists the "
              "parameters that differ from their defaults (and an attack's strength parameter)"),
    "optional": ("bool", "false", "true: when a file or folder this entry names is missing, leave the entry out "
                 "with a message (validate says so) instead of failing"),
}
ATTACK_TABLE_KEYS: dict[str, tuple[str, str, str]] = {
    "adaptive": ("bool", "false", "true: attack metric ∘ defense, once per defense (EOT over a stochastic "
                 "defense's randomness, BPDA through a non-differentiable defense's surrogate)"),
    "eot_samples": ("int", "1", "EOT: draws of a stochastic defense averaged per gradient of an adaptive attack"),
}
ENTRY_META_KEYS = set(TABLE_KEYS) | set(ATTACK_TABLE_KEYS)  # every key of a table that is not a plugin parameter
ATTACK_ONLY_KEYS = tuple(ATTACK_TABLE_KEYS)


@dataclass(frozen=True)
class PluginSpec:
    """One resolved plugin instance of the matrix: its kind, registered name and typed parameters.

    ``params`` are canonical: only the values that differ from the plugin's defaults (writing a default
    out changes nothing: not the label, not the content key); ``resolved()`` fills the defaults in.
    """

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

    def key_text(self) -> str:
        """``key()`` as canonical JSON: equal for two specs that give the same output."""
        return json.dumps(self.key(), sort_keys=True, default=str)

    @property
    def cls(self) -> type:
        return REGISTRIES[self.family].get(self.name)

    def resolved(self) -> dict[str, Any]:
        """The parameters with every default filled in (``params`` holds only those that differ)."""
        defaults = {p: d for p, _, d in constructor_params(self.cls) if d is not inspect.Parameter.empty}
        return {**defaults, **self.params}

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
    attacked_images: str = "png"     # how attacked images are stored and measured (benchmark.attacked)
    executor: str = "local"          # where stages run; `run --executor` overrides it
    ray_address: str | None = None   # the Ray cluster to join; `run --address` overrides it


@dataclass(frozen=True)
class MatrixConfig:
    path: Path
    run: RunSettings
    datasets: list[PluginSpec]
    metrics: list[PluginSpec]
    attacks: list[PluginSpec]
    defenses: list[PluginSpec]
    raw: dict[str, Any] = field(repr=False, default_factory=dict)
    # optional entries left out because a file they name is missing: {"what", "reason", "key"}
    skipped: list[dict[str, str]] = field(default_factory=list)

    @property
    def n_cells(self) -> int:
        return len(self.datasets) * len(self.metrics) * len(self.attacks) * len(self.defenses)


# --------------------------------------------------------------------------------------------
def load_config(path: str | Path, *, device: str | None = None) -> MatrixConfig:
    """Read and validate ``path``; ``device`` (``--device``) overrides ``run.device``. Writes nothing."""
    path = Path(path)
    fname = str(path)
    if not path.is_file():
        raise ConfigError("config file not found", file=fname)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError("not a UTF-8 text file", file=fname) from None
    except OSError as exc:
        raise ConfigError(f"cannot read it: {exc.strerror or exc}", file=fname) from None
    except RecursionError:
        raise ConfigError(f"not valid TOML: nested too deeply (at most {MAX_DEPTH} levels)", file=fname) from None
    except ValueError as exc:  # TOMLDecodeError, and integers past Python's 4300-digit conversion limit
        text = "an integer with thousands of digits (integers are 64-bit)" if "digits" in str(exc) else _one_line(exc)
        raise ConfigError(f"not valid TOML: {text}", file=fname) from None
    return parse_config(raw, path, device=device)


def parse_config(raw: dict[str, Any], path: Path, *, device: str | None = None) -> MatrixConfig:
    fname, base = str(path), path.resolve().parent
    _check_tree(raw, "", fname, 0)
    unknown = set(raw) - {"run", *REGISTRIES}
    if unknown:
        raise ConfigError(f"unknown top-level key(s) {sorted(unknown)}; expected [run], [[datasets]], "
                          "[[metrics]], [[attacks]], [[defenses]]", file=fname, key=_join("", sorted(unknown)[0]))
    run = _parse_run(raw.get("run", {}), fname, base, default_name=path.stem)
    if device is not None:  # the command line wins over the file (checked as the file's value would be)
        from dataclasses import replace

        run = replace(run, device=_checked_device(device, "command line", "--device"))
    else:
        _checked_device(run.device, fname, "run.device")
    load_builtin_plugins()
    for plugin in run.plugins:
        try:
            load_plugin_file(plugin)
        except ConfigError as exc:
            raise ConfigError(exc.detail, file=fname, key="run.plugins") from None
    families, skipped = {}, []
    for family, registry in REGISTRIES.items():
        entries = raw.get(family)
        if entries is None:
            raise ConfigError(f"missing section [[{family}]] (at least one entry with a 'name')", file=fname,
                              key=family)
        if isinstance(entries, dict):
            entries = [entries]
        if not isinstance(entries, list) or not entries:
            raise ConfigError(f"expected one or more [[{family}]] tables", file=fname, key=family)
        specs: list[tuple[PluginSpec, str]] = []
        for i, entry in enumerate(entries):
            specs.extend(_parse_entry(family, registry, entry, f"{family}[{i}]", fname, base, skipped))
        _reject_duplicates(specs, registry.kind, fname)
        if not specs:
            raise ConfigError(f"every [[{family}]] entry is optional and unavailable: "
                              f"{'; '.join(s['reason'] for s in skipped if s['key'].startswith(family))}",
                              file=fname, key=family)
        families[family] = [s for s, _ in specs]
    return MatrixConfig(path=path, run=run, raw=raw, skipped=skipped, **families)


def _reject_duplicates(specs: list[tuple[PluginSpec, str]], kind: str, fname: str) -> None:
    """Two entries with the same plugin and resolved parameters, or the same label, are an error."""
    by_key: dict[str, str] = {}
    by_label: dict[str, str] = {}
    for spec, where in specs:
        key = spec.key_text()
        if key in by_key:
            raise ConfigError(f"duplicate entries: {spec.label} again, as in {by_key[key]} (the same {kind} with "
                              "the same parameters once defaults are filled in); remove one", file=fname, key=where)
        if spec.label in by_label:
            raise ConfigError(f"duplicate entries: the label '{spec.label}' is also {by_label[spec.label]}'s; give "
                              "them distinct parameters or a 'label'", file=fname, key=where)
        by_key[key] = by_label[spec.label] = where


def device_problem(device: str) -> str | None:
    """Why ``device`` cannot run here (not a device name, or absent on this machine), or None when it can."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        return f"{_show(device)} is not a device name (expected \"cpu\", \"cuda\", \"cuda:N\" or \"mps\")"
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


def _checked_device(device: str, fname: str, key: str) -> str:
    problem = device_problem(device)
    if problem:
        raise ConfigError(problem, file=fname, key=key)
    return device


def run_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a run directory's name (one safe path component), or None when it can."""
    if not name or name in (".", ".."):
        return "must not be empty, '.' or '..'"
    bad = [c for c in ("/", "\\", "\0") if c in name] + [c for c in name if ord(c) < 32]
    if bad or Path(name).is_absolute() or Path(name).name != name:
        return f"must be a single folder name (no {', '.join(map(repr, bad or ['/']))})"
    if name.startswith("-"):
        return "must not start with '-'"
    return None


def _parse_run(run: Any, fname: str, base: Path, default_name: str) -> RunSettings:
    if not isinstance(run, dict):
        raise ConfigError("expected a table", file=fname, key="run")
    unknown = set(run) - RUN_KEYS
    if unknown:
        first = sorted(unknown)[0]
        close = difflib.get_close_matches(first, RUN_KEYS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"unknown key{hint}; expected one of {sorted(RUN_KEYS)}", file=fname,
                          key=_join("run", first))

    def get(key: str, ann: Any, default: Any) -> Any:
        return coerce(run[key], ann, fname, f"run.{key}", base) if key in run else default

    size = run.get("image_size", 256)
    if size == "keep":
        image_size = None
    else:
        if isinstance(size, int) and not isinstance(size, bool):
            size = [size, size]
        image_size = tuple(coerce(size, tuple[int, int], fname, "run.image_size", base))
        if min(image_size) < 32 or max(image_size) > MAX_IMAGE_SIDE:
            raise ConfigError(f"expected sizes within 32..{MAX_IMAGE_SIDE} (an integer or [height, width]) or "
                              f"\"keep\", got {_show(run['image_size'])}", file=fname, key="run.image_size")
    policy = get("size_policy", str, "resize" if image_size else "keep")
    if policy not in SIZE_POLICIES:
        raise ConfigError(f"expected one of {SIZE_POLICIES}, got {policy!r}", file=fname, key="run.size_policy")
    batch = get("batch_size", int, 4)
    if batch < 1:
        raise ConfigError(f"expected a positive integer, got {batch}", file=fname, key="run.batch_size")
    plugins = tuple(Path(p) for p in get("plugins", list[Path], []))
    fmt = get("attacked_images", str, "png")
    if fmt not in ATTACKED_FORMATS:
        raise ConfigError(f"expected one of {ATTACKED_FORMATS}, got {fmt!r}", file=fname, key="run.attacked_images")
    executor = get("executor", str, "local")
    if executor not in EXECUTORS:
        raise ConfigError(f"expected one of {EXECUTORS}, got {executor!r}", file=fname, key="run.executor")
    address = get("ray_address", str, None)
    if address is not None and executor != "ray":
        raise ConfigError('needs executor = "ray"', file=fname, key="run.ray_address")
    name = get("name", str, default_name)
    if (problem := run_name_problem(name)) is not None:
        raise ConfigError(f"run name {name!r} {problem}: it names the folder <output_dir>/<name>", file=fname,
                          key="run.name")
    return RunSettings(
        name=name, output_dir=Path(get("output_dir", str, "runs")),
        device=get("device", str, "cpu"), batch_size=batch, seed=get("seed", int, 0),
        image_size=image_size, size_policy=policy, plugins=plugins, lpips=get("lpips", bool, False),
        dists=get("dists", bool, False), attacked_images=fmt, executor=executor, ray_address=address,
    )


def _parse_entry(family: str, registry: Registry, entry: Any, where: str, fname: str, base: Path,
                 skipped: list[dict[str, str]]) -> list[tuple[PluginSpec, str]]:
    """The plugin instances one table expands into, each with the table's key (``attacks[0]``)."""
    if not isinstance(entry, dict):
        raise ConfigError("expected a table with a 'name'", file=fname, key=where)
    if "name" not in entry:
        raise ConfigError("missing required key 'name'", file=fname, key=f"{where}.name")
    name = entry["name"]
    if not isinstance(name, str):
        raise ConfigError(f"expected a string, got {_show(name)}", file=fname, key=f"{where}.name")
    try:
        cls = registry.get(name)
    except ConfigError as exc:
        raise ConfigError(exc.detail, file=fname, key=f"{where}.name") from None
    kind = f"{registry.kind} '{name}'"
    params = {p: (ann, default) for p, ann, default in constructor_params(cls)}
    given = {k: v for k, v in entry.items() if k not in ENTRY_META_KEYS}
    for k in given:
        if k not in params:
            close = difflib.get_close_matches(k, params, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            meta = sorted(TABLE_KEYS) + (sorted(ATTACK_TABLE_KEYS) if family == "attacks" else [])
            raise ConfigError(f"unknown parameter for {kind}{hint}; expected one of {sorted(params)} "
                              f"(or {', '.join(meta)})", file=fname, key=_join(where, k))
    missing = [p for p, (_, d) in params.items() if d is _EMPTY and p not in given]
    if missing:
        raise ConfigError(f"{kind} needs parameter '{missing[0]}'", file=fname, key=f"{where}.{missing[0]}")
    optional = entry.get("optional", False)
    if not isinstance(optional, bool):
        raise ConfigError(f"expected true or false, got {_show(optional)}", file=fname, key=f"{where}.optional")
    for k in ATTACK_ONLY_KEYS:
        if k in entry and family != "attacks":
            raise ConfigError(f"'{k}' applies to attacks only", file=fname, key=f"{where}.{k}")
    adaptive = entry.get("adaptive", False)
    if not isinstance(adaptive, bool):
        raise ConfigError(f"expected true or false, got {_show(adaptive)}", file=fname, key=f"{where}.adaptive")
    eot = entry.get("eot_samples", 1)
    if isinstance(eot, bool) or not isinstance(eot, int) or not 1 <= eot <= 10_000:
        raise ConfigError(f"expected an integer within 1..10000, got {_show(eot)}", file=fname,
                          key=f"{where}.eot_samples")
    if eot > 1 and not adaptive:
        raise ConfigError("eot_samples applies to adaptive attacks: add adaptive = true", file=fname,
                          key=f"{where}.eot_samples")
    label = entry.get("label")
    if label is not None and (not isinstance(label, str) or not label.strip()):
        raise ConfigError(f"expected a non-empty string, got {_show(label)}", file=fname, key=f"{where}.label")
    # A list given for a parameter that is not itself a sequence expands into a product.
    axes = []
    for k, v in given.items():
        ann = params[k][0]
        expands = isinstance(v, list) and not _is_sequence_type(ann)
        if expands and not v:
            raise ConfigError("empty list: give a value, or a list of values (one entry each)", file=fname,
                              key=f"{where}.{k}")
        values = v if expands else [v]
        axes.append([(k, coerce(x, ann, fname, f"{where}.{k}", base)) for x in values])
    n_specs = math.prod(len(a) for a in axes)
    if n_specs > MAX_EXPANSION:
        raise ConfigError(f"its lists expand into {n_specs} {registry.plural}; at most {MAX_EXPANSION} per table",
                          file=fname, key=where)
    defaults = {p: d for p, (_, d) in params.items() if d is not _EMPTY}
    strength = getattr(cls, "strength_param", None)
    specs = []
    for combo in itertools.product(*axes) if axes else [()]:
        chosen = dict(combo)
        resolved = {p: chosen[p] if p in chosen else defaults[p] for p in params}
        resolved, absent = _plugin_checked(cls, resolved, kind, where, fname, base)
        canon = {k: v for k, v in resolved.items() if k not in defaults or not _same(v, defaults[k])}
        shown = ",".join(f"{k}={_short(v)}" for k, v in resolved.items() if k in canon or k == strength)
        lab = label or (f"{name}({shown})" if shown else name)
        if label and n_specs > 1 and shown:
            lab = f"{label}({shown})"
        if adaptive and not label:
            lab += f"+adaptive(EOT{eot})" if eot > 1 else "+adaptive"
        spec = PluginSpec(family=family, name=name, params=canon, label=lab, optional=optional, adaptive=adaptive,
                          eot_samples=eot)
        absent = absent or _absent_path(resolved)
        if absent is not None:
            key, path = f"{where}.{absent[0]}", absent[1]
            reason = f"{kind}: no such file or folder: {path} (named by '{key}')"
            if not optional:
                raise ConfigError(f"no such file or folder: {path} (relative paths are relative to the config "
                                  "file's folder; optional = true skips the entry instead)", file=fname, key=key)
            skipped.append({"what": f"{registry.kind} {lab}", "reason": reason, "key": key})
            continue
        if family in CHEAP_FAMILIES:  # cheap to construct: check their values now, not mid-run
            missing_file = _built(spec, resolved, kind, where, fname)
            if missing_file is not None:
                skipped.append({"what": f"{registry.kind} {lab}", "reason": missing_file[1], "key": missing_file[0]})
                continue
        specs.append((spec, where))
    return specs


def _plugin_checked(cls: type, resolved: dict[str, Any], kind: str, where: str, fname: str,
                    base: Path) -> tuple[dict[str, Any], tuple[str, Path] | None]:
    """The plugin class's own ``check_params`` (no I/O but ``stat``); its errors get the file and key.

    Also returns the (parameter, path) of a missing file it reports with ``MissingWeightsError(key=...)``.
    """
    check = getattr(cls, "check_params", None)
    if check is None:
        return resolved, None
    try:
        out = check(dict(resolved), base)
    except MissingWeightsError as exc:
        if exc.key is None:
            raise ConfigError(_one_line(exc), file=fname, key=where) from None
        return resolved, (exc.key, Path(exc.path))
    except ConfigError as exc:
        raise ConfigError(f"{kind}: {exc.detail}", file=fname, key=f"{where}.{exc.key}" if exc.key else where) \
            from None
    except Exception as exc:  # a plugin's check refusing a value, whatever it raises, is a config error
        raise ConfigError(f"invalid value for {kind}: {_exc_text(exc)}", file=fname, key=where) from None
    return (resolved if out is None else dict(out)), None


def _built(spec: PluginSpec, resolved: dict[str, Any], kind: str, where: str, fname: str
           ) -> tuple[str, str] | None:
    """Build an attack or defense now, so that a bad value is a config error naming the key.

    An ``optional`` entry whose build finds a file missing is not an error: returns (key, reason) to skip it.
    """
    try:
        spec.build()
    except ConfigError as exc:
        key = exc.key if exc.key and exc.key.startswith(where) else f"{where}.{exc.key}" if exc.key else where
        raise ConfigError(f"{kind}: {exc.detail}", file=exc.file or fname, key=key) from None
    except MissingWeightsError as exc:
        param = next((k for k, v in resolved.items() if isinstance(v, Path) and str(exc.path).startswith(str(v))),
                     None)
        key = f"{where}.{param}" if param else where
        if spec.optional:
            return key, f"{kind}: {_one_line(exc)} (named by '{key}')"
        raise ConfigError(_one_line(exc), file=fname, key=key) from None
    except Exception as exc:  # building is how attacks and defenses check their values
        raise ConfigError(f"invalid value for {kind}: {_exc_text(exc)}", file=fname, key=where) from None
    return None


def _absent_path(resolved: dict[str, Any]) -> tuple[str, Path] | None:
    """The first path-typed parameter (or path in a list parameter) that names nothing on disk."""
    for k, v in resolved.items():
        for item in v if isinstance(v, (list, tuple)) else [v]:
            if isinstance(item, Path) and not path_exists(item):
                return k, item
    return None


def describe_config(cfg: MatrixConfig) -> str:
    lines = [f"{cfg.path}: valid; {cfg.n_cells} cells "
             f"({len(cfg.datasets)} datasets x {len(cfg.metrics)} metrics x {len(cfg.attacks)} attacks x "
             f"{len(cfg.defenses)} defenses)"]
    for fam in REGISTRIES:
        for s in getattr(cfg, fam):
            lines.append(f"  {fam[:-1]:8s} {s.label}: {json.dumps(_jsonable(s.resolved()), default=str)}")
    for item in cfg.skipped:
        lines.append(f"  skipped  {item['what']} (optional): {item['reason']}")
    return "\n".join(lines)


def table_keys(family: str) -> list[dict[str, str]]:
    """The keys every ``[[family]]`` table accepts besides its plugin's parameters, with what they do."""
    keys = {**TABLE_KEYS, **(ATTACK_TABLE_KEYS if family == "attacks" else {})}
    return [{"name": k, "type": t, "default": d, "help": h} for k, (t, d, h) in keys.items()]


__all__ = ["MatrixConfig", "PluginSpec", "RunSettings", "load_config", "parse_config", "coerce",
           "describe_config", "device_problem", "table_keys"]
