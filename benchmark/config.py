"""``matrix.toml``: read with tomllib, validated at the boundary into typed objects.

Every plugin entry is a table with ``name`` and the plugin's constructor keywords. A list given for a
scalar keyword expands into a product (``eps = ["4/255", "8/255"]`` gives two attacks); ``"8/255"`` is
accepted wherever a number is expected. Unknown keys are errors. Relative paths of input files
(plugin parameters typed as paths, ``run.plugins``) are resolved against the config file's folder;
``run.output_dir`` against the current directory.

Validation does everything that needs no data and no model: types and ranges of every value (finite
numbers, 64-bit integers, at most ``MAX_DEPTH`` levels of nesting), the device, every file or folder a
path-typed parameter names (an ``optional`` entry whose file is missing is left out, with the reason in
``MatrixConfig.skipped``), and each plugin class's ``check_params``, the one route of all four families
(:mod:`benchmark.params`: attacks and defenses are built by it). Parameters are canonical: a value equal to
the default is dropped, so ``jpeg`` and ``jpeg(quality=50)`` are the same entry (duplicates are errors) with
the same label and content key. ``deep`` also opens what datasets and metrics read (:mod:`benchmark.config_files`).

The parts: ``[run]`` in :mod:`benchmark.config_run`, the plugin tables in :mod:`benchmark.config_specs`,
values in :mod:`benchmark.config_values`; their public names are importable from here.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .config_files import deep_check
from .config_run import DEFAULT_THREADS, EXECUTORS, RUN_KEYS, SIZE_POLICIES, RunSettings, checked_device
from .config_run import checked_threads, device_problem, output_dir_problem, parse_run
from .config_specs import ATTACK_TABLE_KEYS, DEFAULT_EOT_SAMPLES, ENTRY_META_KEYS, MAX_EXPANSION, TABLE_KEYS
from .config_specs import PluginSpec, parse_entry, table_keys
from .config_values import MAX_DEPTH, check_tree, coerce, join_key, jsonable, one_line
from .errors import ConfigError, ConfigErrors, PluginError
from .registry import REGISTRIES, load_builtin_plugins, load_plugin_file


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
                if not (k and d.cls.baseline)]


# --------------------------------------------------------------------------------------------
def load_config(path: str | Path, *, device: str | None = None, threads: int | None = None,
                deep: bool = False) -> MatrixConfig:
    """Read and validate ``path``; ``device`` (``--device``) overrides ``run.device`` and ``threads``
    (``--threads``) ``run.threads``. Writes nothing.

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
        text = "an integer with thousands of digits (integers are 64-bit)" if "digits" in str(exc) else one_line(exc)
        raise ConfigError(f"not valid TOML: {text}", file=fname) from None
    return parse_config(raw, path, device=device, threads=threads, deep=deep)


def parse_config(raw: dict[str, Any], path: Path, *, device: str | None = None, threads: int | None = None,
                 deep: bool = False) -> MatrixConfig:
    """Validate the parsed TOML ``raw`` of ``path``; every error found is collected (:class:`ConfigErrors`).
    ``device`` and ``threads`` are the command line's, which win over ``[run]`` (checked as its values are)."""
    fname, base = str(path), path.resolve().parent
    errs: list[ConfigError] = []
    check_tree(raw, "", fname, 0, errs)
    unknown = set(raw) - {"run", *REGISTRIES}
    if unknown:
        errs.append(ConfigError(f"unknown top-level key(s) {sorted(unknown)}; expected [run], [[datasets]], "
                                "[[metrics]], [[attacks]], [[defenses]]", file=fname,
                                key=join_key("", sorted(unknown)[0])))
    run = parse_run(raw.get("run", {}), fname, base, path.stem, errs)
    if device is not None:  # the command line wins over the file (checked as the file's value would be)
        run = replace(run, device=device)
        _collect(errs, checked_device, device, "command line", "--device")
    else:
        _collect(errs, checked_device, run.device, fname, "run.device")
    if threads is not None:
        if _collect(errs, checked_threads, threads, "command line", "--threads") is not None:
            run = replace(run, threads=threads)
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
                specs.extend(parse_entry(family, registry, entry, f"{family}[{i}]", fname, base, skipped, entry_errs))
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
    except PluginError as exc:  # a class that cannot be registered (a taken name, not derived from its base)
        raise ConfigError(f"plugin file {plugin}: {exc}", file=fname, key="run.plugins") from None
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
            lines.append(f"  {fam[:-1]:8s} {s.label}: {json.dumps(jsonable(s.resolved()), default=str)}")
    for item in cfg.skipped:
        lines.append(f"  skipped  {item['what']} (optional): {item['reason']}")
    return "\n".join(lines)


__all__ = ["ATTACK_TABLE_KEYS", "DEFAULT_EOT_SAMPLES", "DEFAULT_THREADS", "ENTRY_META_KEYS", "EXECUTORS",
           "MAX_EXPANSION", "MatrixConfig", "PluginSpec", "RUN_KEYS", "RunSettings", "SIZE_POLICIES", "TABLE_KEYS",
           "coerce", "describe_config", "device_problem", "load_config", "output_dir_problem", "parse_config",
           "table_keys"]
