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
from .config_files import deep_check, file_problem, paths as _paths, release_hint
from .config_values import MAX_DEPTH, check_tree as _check_tree, coerce, exc_text as _exc_text
from .config_values import is_sequence_type as _is_sequence_type, join_key as _join, jsonable as _jsonable
from .config_values import label_text as _short, one_line as _one_line, path_exists
from .config_values import same_value as _same, show as _show
from .errors import ConfigError, ConfigErrors, MissingWeightsError
from .params import MAX_IMAGE_SIDE
from .registry import REGISTRIES, Registry, constructor_params, load_builtin_plugins, load_plugin_file
from .store import run_name_problem

SIZE_POLICIES = ("resize", "center_crop", "keep")
EXECUTORS = ("local", "ray")   # what runs the stages (benchmark.executors.make_executor builds them)
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
# An adaptive attack averages a stochastic defense over K draws per gradient (EOT). The default K is AutoAttack's
# for randomised defenses (its "rand" version: EOT over 20 draws, Croce & Hein 2020); it is recorded per cell
# (eot_samples). Deterministic defenses use one draw whatever K is.
DEFAULT_EOT_SAMPLES = 20
ATTACK_TABLE_KEYS: dict[str, tuple[str, str, str]] = {
    "adaptive": ("bool", "both", "not given: every non-baseline defense meets the attack twice, as a transfer "
                 "attack (x' made on the bare metric) and as an adaptive one on metric ∘ defense (EOT over a "
                 "stochastic defense's randomness, BPDA through a non-differentiable defense's surrogate, "
                 "straight through a differentiable one), labelled +adaptive; true: adaptive only; false: "
                 "transfer only (a published protocol)"),
    "eot_samples": ("int", str(DEFAULT_EOT_SAMPLES), "EOT: draws of a stochastic defense averaged per gradient of "
                    f"an adaptive attack (default {DEFAULT_EOT_SAMPLES}, as AutoAttack's rand version)"),
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
    eot_samples: int = DEFAULT_EOT_SAMPLES  # attacks only: EOT draws of a stochastic defense's randomness
    # attacks only: the label of this transfer attack's adaptive twin, which the plan also runs against every
    # non-baseline defense (the table did not say ``adaptive``); None: this spec runs alone
    twin: str | None = None

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

    def variants(self) -> list["PluginSpec"]:
        """The attacks this entry runs as: itself, and its adaptive twin when the table did not say ``adaptive``."""
        if not self.twin:
            return [self]
        from dataclasses import replace

        return [self, replace(self, adaptive=True, twin=None, label=self.twin)]


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
        return len(self.datasets) * len(self.metrics) * len(self.cell_pairs())

    def attack_variants(self) -> list[PluginSpec]:
        """Every attack the matrix runs: each entry, followed by its adaptive twin where it has one."""
        return [v for a in self.attacks for v in a.variants()]

    def cell_pairs(self) -> list[tuple[PluginSpec, PluginSpec]]:
        """(attack, defense) of every cell of one (dataset, metric), in plan order. An adaptive twin does not meet
        a baseline defense (identity): through it the adaptive attack is the transfer attack, run once."""
        return [(v, d) for a in self.attacks for k, v in enumerate(a.variants()) for d in self.defenses
                if not (k and getattr(d.cls, "baseline", False))]


# --------------------------------------------------------------------------------------------
def load_config(path: str | Path, *, device: str | None = None, deep: bool = False) -> MatrixConfig:
    """Read and validate ``path``; ``device`` (``--device``) overrides ``run.device``. Writes nothing.

    Every error is found in one pass: a :class:`ConfigErrors` lists them all, one line each. ``deep``
    (``validate``, and ``run`` before any work) also opens what the plugins read (:func:`deep_check`)."""
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
    return parse_config(raw, path, device=device, deep=deep)


def parse_config(raw: dict[str, Any], path: Path, *, device: str | None = None, deep: bool = False) -> MatrixConfig:
    """Validate the parsed TOML ``raw`` of ``path``; every error found is collected (:class:`ConfigErrors`)."""
    fname, base = str(path), path.resolve().parent
    errs: list[ConfigError] = []
    _check_tree(raw, "", fname, 0, errs)
    unknown = set(raw) - {"run", *REGISTRIES}
    if unknown:
        errs.append(ConfigError(f"unknown top-level key(s) {sorted(unknown)}; expected [run], [[datasets]], "
                                "[[metrics]], [[attacks]], [[defenses]]", file=fname,
                                key=_join("", sorted(unknown)[0])))
    run = _parse_run(raw.get("run", {}), fname, base, path.stem, errs)
    if device is not None:  # the command line wins over the file (checked as the file's value would be)
        from dataclasses import replace

        run = replace(run, device=device)
        _collect(errs, _checked_device, device, "command line", "--device")
    else:
        _collect(errs, _checked_device, run.device, fname, "run.device")
    load_builtin_plugins()
    for plugin in run.plugins:
        _collect(errs, _load_plugin, plugin, fname)
    families, skipped, where = {}, [], {}
    for family, registry in REGISTRIES.items():
        entries = raw.get(family)
        if entries is None:
            errs.append(ConfigError(f"missing section [[{family}]] (at least one entry with a 'name')", file=fname,
                                    key=family))
            continue
        if isinstance(entries, dict):
            entries = [entries]
        if not isinstance(entries, list) or not entries:
            errs.append(ConfigError(f"expected one or more [[{family}]] tables", file=fname, key=family))
            continue
        specs: list[tuple[PluginSpec, str]] = []
        n_errors = len(errs)
        for i, entry in enumerate(entries):
            entry_errs: list[ConfigError] = []
            try:
                specs.extend(_parse_entry(family, registry, entry, f"{family}[{i}]", fname, base, skipped, entry_errs))
            except ConfigError as exc:
                entry_errs.append(exc)
            errs.extend(entry_errs)
        _collect(errs, _reject_duplicates, specs, registry.kind, fname)
        if not specs and len(errs) == n_errors:
            errs.append(ConfigError(f"every [[{family}]] entry is optional and unavailable: "
                                    f"{'; '.join(s['reason'] for s in skipped if s['key'].startswith(family))}",
                                    file=fname, key=family))
        families[family] = [s for s, _ in specs]
        where.update({id(s): w for s, w in specs})
    if deep and len(families) == len(REGISTRIES):  # open what the entries whose values are right read
        cfg = MatrixConfig(path=path, run=run, raw=raw, skipped=skipped, **families)
        errs.extend(deep_check(cfg, lambda spec: where[id(spec)]))
    if errs:
        raise ConfigErrors(_unique(errs))
    return MatrixConfig(path=path, run=run, raw=raw, skipped=skipped, **families)


def _collect(errs: list[ConfigError], fn, *args, **kwargs) -> Any:
    """``fn(*args, **kwargs)``, or None with its ConfigError appended to ``errs``."""
    try:
        return fn(*args, **kwargs)
    except ConfigError as exc:
        errs.append(exc)
        return None


def _unique(errs: list[ConfigError]) -> list[ConfigError]:
    """Each error once (a product of lists repeats one entry's error). A value the tree check refused (``nan``,
    a 65-bit integer, nesting too deep) is not reported again by its parameter's type check, at its key or at
    the key of a list or table holding it."""
    flat = [x for e in errs for x in (e.errors if isinstance(e, ConfigErrors) else [e])]
    tree = [(e.file, e.key) for e in flat if getattr(e, "tree", False) and e.key]
    seen, out = set(), []
    for e in flat:
        again = not getattr(e, "tree", False) and e.key and any(
            f == e.file and (k == e.key or k.startswith((e.key + "[", e.key + "."))) for f, k in tree)
        if str(e) not in seen and not again:
            seen.add(str(e))
            out.append(e)
    return out


def _load_plugin(plugin: Path, fname: str) -> None:
    """Import a ``run.plugins`` file; any failure, ``sys.exit()`` included, is an error naming the file."""
    try:
        load_plugin_file(plugin)
    except ConfigError as exc:
        raise ConfigError(exc.detail, file=fname, key="run.plugins") from None
    except SystemExit as exc:  # a plugin must not decide the exit status of validate or run
        raise ConfigError(f"plugin file {plugin} called sys.exit({exc.code!r}) while being imported; a plugin "
                          "file only defines and registers classes", file=fname, key="run.plugins") from None


def _reject_duplicates(specs: list[tuple[PluginSpec, str]], kind: str, fname: str) -> None:
    """Two entries with the same plugin and resolved parameters, or the same label, are an error."""
    by_key: dict[str, str] = {}
    by_label: dict[str, str] = {}
    for spec, where in [(v, w) for s, w in specs for v in s.variants()]:  # adaptive twins too
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
        return f"is not a usable folder name ({_one_line(exc)})"
    return None


def _parse_run(run: Any, fname: str, base: Path, default_name: str, errs: list[ConfigError]) -> RunSettings:
    """``[run]``; each bad key is appended to ``errs`` (and its default used, so that the rest is checked too)."""
    if not isinstance(run, dict):
        errs.append(ConfigError("expected a table", file=fname, key="run"))
        run = {}
    for first in sorted(set(run) - RUN_KEYS):
        close = difflib.get_close_matches(first, RUN_KEYS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        errs.append(ConfigError(f"unknown key{hint}; expected one of {sorted(RUN_KEYS)}", file=fname,
                                key=_join("run", first)))

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
                                  f"\"keep\", got {_show(run['image_size'])}", file=fname, key="run.image_size")
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
    )


def _parse_entry(family: str, registry: Registry, entry: Any, where: str, fname: str, base: Path,
                 skipped: list[dict[str, str]], errs: list[ConfigError]) -> list[tuple[PluginSpec, str]]:
    """The plugin instances one table expands into, each with the table's key (``attacks[0]``).

    Errors of independent keys are appended to ``errs`` (all of them); one that stops the table is raised."""
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
    n_errors = len(errs)
    for k in given:
        if k not in params:
            close = difflib.get_close_matches(k, params, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            meta = sorted(TABLE_KEYS) + (sorted(ATTACK_TABLE_KEYS) if family == "attacks" else [])
            errs.append(ConfigError(f"unknown parameter for {kind}{hint}; expected one of {sorted(params)} "
                                    f"(or {', '.join(meta)})", file=fname, key=_join(where, k)))
    for p in [p for p, (_, d) in params.items() if d is _EMPTY and p not in given]:
        errs.append(ConfigError(f"{kind} needs parameter '{p}'", file=fname, key=f"{where}.{p}"))
    optional = entry.get("optional", False)
    if not isinstance(optional, bool):
        raise ConfigError(f"expected true or false, got {_show(optional)}", file=fname, key=f"{where}.optional")
    for k in ATTACK_ONLY_KEYS:
        if k in entry and family != "attacks":
            raise ConfigError(f"'{k}' applies to attacks only", file=fname, key=f"{where}.{k}")
    adaptive = entry.get("adaptive")   # None: transfer and adaptive (the twin); true/false: one of them
    if adaptive is not None and not isinstance(adaptive, bool):
        raise ConfigError(f"expected true or false, got {_show(adaptive)}", file=fname, key=f"{where}.adaptive")
    eot = entry.get("eot_samples", DEFAULT_EOT_SAMPLES)
    if isinstance(eot, bool) or not isinstance(eot, int) or not 1 <= eot <= 10_000:
        raise ConfigError(f"expected an integer within 1..10000, got {_show(eot)}", file=fname,
                          key=f"{where}.eot_samples")
    if "eot_samples" in entry and adaptive is False:
        raise ConfigError("eot_samples applies to adaptive attacks: remove adaptive = false (or eot_samples)",
                          file=fname, key=f"{where}.eot_samples")
    # a fitted attack (UAP) is fitted on the bare metric: its adaptive twin would apply the same perturbation
    paired = adaptive is None and family == "attacks" and not getattr(cls, "needs_fit", False)
    ada_suffix = "+adaptive" + (f"(EOT{eot})" if eot != DEFAULT_EOT_SAMPLES else "")
    label = entry.get("label")
    if label is not None and (not isinstance(label, str) or not label.strip()):
        raise ConfigError(f"expected a non-empty string, got {_show(label)}", file=fname, key=f"{where}.label")
    # A list given for a parameter that is not itself a sequence expands into a product.
    axes = []
    for k, v in given.items():
        if k not in params:
            continue
        ann = params[k][0]
        expands = isinstance(v, list) and not _is_sequence_type(ann)
        if expands and not v:
            errs.append(ConfigError("empty list: give a value, or a list of values (one entry each)", file=fname,
                                    key=f"{where}.{k}"))
            continue
        axis = []
        for x in v if expands else [v]:
            try:
                axis.append((k, coerce(x, ann, fname, f"{where}.{k}", base)))
            except ConfigError as exc:
                errs.append(exc)
        axes.append(axis)
    if len(errs) > n_errors:  # a wrong or missing value: its table's plugin cannot be checked further
        return []
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
        try:
            resolved, absent = _plugin_checked(cls, resolved, kind, where, fname, base)
        except ConfigError as exc:
            errs.append(exc)
            continue
        canon = {k: v for k, v in resolved.items() if k not in defaults or not _same(v, defaults[k])}
        shown = ",".join(f"{k}={_short(v)}" for k, v in resolved.items() if k in canon or k == strength)
        lab = label or (f"{name}({shown})" if shown else name)
        if label and n_specs > 1 and shown:
            lab = f"{label}({shown})"
        if adaptive and not label:
            lab += ada_suffix
        spec = PluginSpec(family=family, name=name, params=canon, label=lab, optional=optional,
                          adaptive=bool(adaptive), eot_samples=eot, twin=lab + ada_suffix if paired else None)
        absent = absent or _absent_path(resolved)
        if absent is not None:
            key, path = f"{where}.{absent[0]}", absent[1]
            said = absent[2] if len(absent) > 2 else None  # what the plugin's own check said about it
            reason = f"{kind}: {said or f'no such file or folder: {path}'} (named by '{key}')"
            if not optional:
                hint = "" if said else release_hint(cls, resolved, path)
                errs.append(ConfigError(said or f"no such file or folder: {path}" + (f"; {hint}" if hint else "")
                                        + " (relative paths are relative to the config file's folder; optional = "
                                        "true skips the entry instead)", file=fname, key=key))
                continue
            skipped.append({"what": f"{registry.kind} {lab}", "reason": reason, "key": key})
            continue
        if family in CHEAP_FAMILIES:  # cheap to construct: check their values now, not mid-run
            try:
                missing_file = _built(spec, resolved, kind, where, fname)
            except ConfigError as exc:
                errs.append(exc)
                continue
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
        # with a hint (where the release lives, where to put it), the plugin's own words are the message
        return resolved, (exc.key, Path(exc.path), _one_line(exc) if exc.hint else None)
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
        text = file_problem(resolved, kind)  # a file it read may be the cause: then that file is the message
        if text:
            raise ConfigError(text[1], file=fname, key=f"{where}.{text[0]}") from None
        raise ConfigError(f"invalid value for {kind}: {_exc_text(exc)}", file=fname, key=where) from None
    return None


def _absent_path(resolved: dict[str, Any]) -> tuple[str, Path] | None:
    """The first path-typed parameter (or path in a list parameter) that names nothing on disk."""
    for k, v in resolved.items():
        for item in _paths(v):
            if not path_exists(item):
                return k, item
    return None


def describe_config(cfg: MatrixConfig) -> str:
    lines = [f"{cfg.path}: valid; {cfg.n_cells} cells "
             f"({len(cfg.datasets)} datasets x {len(cfg.metrics)} metrics x {len(cfg.attacks)} attacks x "
             f"{len(cfg.defenses)} defenses)"]
    twins = [a.label for a in cfg.attacks if a.twin]
    if twins:
        lines.append(f"  adaptive by default: {', '.join(twins)} also run(s) adaptively (EOT/BPDA through metric ∘ "
                     "defense) against every non-baseline defense; adaptive = false in a table: transfer only")
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
