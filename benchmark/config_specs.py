"""The ``[[datasets]]``, ``[[metrics]]``, ``[[attacks]]`` and ``[[defenses]]`` tables of a ``matrix.toml``,
validated into :class:`PluginSpec` objects: one route for the four families.

A table's keys are bound to its plugin's constructor (unknown and missing keys are errors, with the closest
name), its values typed against the annotations, its lists expanded into a product; then every resulting
instance goes through its class's ``check_params`` (declared by each family's base class, overridden by
plugins: :mod:`benchmark.params`; attacks and defenses are built by it), and every file a path parameter
names must exist (``optional = true`` leaves the entry out instead). Parameters are canonical: a value equal
to the default is dropped, so ``jpeg`` and ``jpeg(quality=50)`` are the same entry, with the same label and
content key. Every error names the file and the key (``attacks[0].eps``) and says what was expected.
"""
from __future__ import annotations

import difflib
import inspect
import itertools
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from .config_files import WEIGHTS_FAMILIES, file_problem, paths, release_hint
from .config_values import coerce, exc_text, is_sequence_type, join_key, jsonable, label_text, one_line, path_exists
from .config_values import same_value, show
from .errors import ConfigError, MissingWeightsError
from .registry import REGISTRIES, Registry, constructor_params
from .seeds import seed_from

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
        key = {"name": self.name, "params": jsonable(self.params)}
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
        defaults = {p: d for p, _, d in constructor_params(self.cls) if d is not _EMPTY}
        return {**defaults, **self.params}

    def build(self) -> Any:
        """The plugin, built with torch's global generator seeded from its family, name and parameters: a plugin
        whose constructor draws (a network's random initialisation) is the same in every process, whatever was
        built or drawn before, so records depend on neither the executor nor the order of the stages."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed_from("build", self.family, self.name, jsonable(self.params)))
            return self.cls(**self.params)

    def variants(self) -> list["PluginSpec"]:
        """The attacks this entry runs as: itself, and its adaptive twin when the table did not say ``adaptive``."""
        if not self.twin:
            return [self]
        return [self, replace(self, adaptive=True, twin=None, label=self.twin)]


def table_keys(family: str) -> list[dict[str, str]]:
    """The keys every ``[[family]]`` table accepts besides its plugin's parameters, with what they do."""
    keys = {**TABLE_KEYS, **(ATTACK_TABLE_KEYS if family == "attacks" else {})}
    return [{"name": k, "type": t, "default": d, "help": h} for k, (t, d, h) in keys.items()]


def parse_entry(family: str, registry: Registry, entry: Any, where: str, fname: str, base: Path,
                skipped: list[dict[str, str]], errs: list[ConfigError]) -> list[tuple[PluginSpec, str]]:
    """The plugin instances one table expands into, each with the table's key (``attacks[0]``).

    Errors of independent keys are appended to ``errs`` (all of them); one that stops the table is raised."""
    if not isinstance(entry, dict):
        raise ConfigError("expected a table with a 'name'", file=fname, key=where)
    if "name" not in entry:
        raise ConfigError("missing required key 'name'", file=fname, key=f"{where}.name")
    name = entry["name"]
    if not isinstance(name, str):
        raise ConfigError(f"expected a string, got {show(name)}", file=fname, key=f"{where}.name")
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
                                    f"(or {', '.join(meta)})", file=fname, key=join_key(where, k)))
    for p in [p for p, (_, d) in params.items() if d is _EMPTY and p not in given]:
        errs.append(ConfigError(f"{kind} needs parameter '{p}'", file=fname, key=f"{where}.{p}"))
    optional = entry.get("optional", False)
    if not isinstance(optional, bool):
        raise ConfigError(f"expected true or false, got {show(optional)}", file=fname, key=f"{where}.optional")
    for k in ATTACK_ONLY_KEYS:
        if k in entry and family != "attacks":
            raise ConfigError(f"'{k}' applies to attacks only", file=fname, key=f"{where}.{k}")
    adaptive = entry.get("adaptive")   # None: transfer and adaptive (the twin); true/false: one of them
    if adaptive is not None and not isinstance(adaptive, bool):
        raise ConfigError(f"expected true or false, got {show(adaptive)}", file=fname, key=f"{where}.adaptive")
    eot = entry.get("eot_samples", DEFAULT_EOT_SAMPLES)
    if isinstance(eot, bool) or not isinstance(eot, int) or not 1 <= eot <= 10_000:
        raise ConfigError(f"expected an integer within 1..10000, got {show(eot)}", file=fname,
                          key=f"{where}.eot_samples")
    if "eot_samples" in entry and adaptive is False:
        raise ConfigError("eot_samples applies to adaptive attacks: remove adaptive = false (or eot_samples)",
                          file=fname, key=f"{where}.eot_samples")
    attack = family == "attacks"  # the capabilities below are declared by the Attack base class
    # a fitted attack (UAP) is fitted on the bare metric: its adaptive twin would apply the same perturbation
    paired = adaptive is None and attack and not cls.needs_fit
    ada_suffix = "+adaptive" + (f"(EOT{eot})" if eot != DEFAULT_EOT_SAMPLES else "")
    label = entry.get("label")
    if label is not None and (not isinstance(label, str) or not label.strip()):
        raise ConfigError(f"expected a non-empty string, got {show(label)}", file=fname, key=f"{where}.label")
    # A list given for a parameter that is not itself a sequence expands into a product.
    axes = []
    for k, v in given.items():
        if k not in params:
            continue
        ann = params[k][0]
        expands = isinstance(v, list) and not is_sequence_type(ann)
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
    strength = cls.strength_param if attack else None
    specs = []
    for combo in itertools.product(*axes) if axes else [()]:
        chosen = dict(combo)
        resolved = {p: chosen[p] if p in chosen else defaults[p] for p in params}
        try:
            resolved, absent = checked_params(cls, resolved, family, kind, where, fname, base, optional)
        except ConfigError as exc:
            errs.append(exc)
            continue
        canon = {k: v for k, v in resolved.items() if k not in defaults or not same_value(v, defaults[k])}
        shown = ",".join(f"{k}={label_text(v)}" for k, v in resolved.items() if k in canon or k == strength)
        lab = label or (f"{name}({shown})" if shown else name)
        if label and n_specs > 1 and shown:
            lab = f"{label}({shown})"
        if adaptive and not label:
            lab += ada_suffix
        spec = PluginSpec(family=family, name=name, params=canon, label=lab, optional=optional,
                          adaptive=bool(adaptive), eot_samples=eot, twin=lab + ada_suffix if paired else None)
        if absent is None and (missing := absent_path(resolved)) is not None:
            absent = (f"{where}.{missing[0]}", missing[1], None)
        if absent is not None:
            key, path, said = absent
            reason = f"{kind}: {said or f'no such file or folder: {path}'} (named by '{key}')"
            if not optional:
                hint = "" if said else release_hint(family, cls, resolved, path)
                errs.append(ConfigError(said or f"no such file or folder: {path}" + (f"; {hint}" if hint else "")
                                        + " (relative paths are relative to the config file's folder; optional = "
                                        "true skips the entry instead)", file=fname, key=key))
                continue
            skipped.append({"what": f"{registry.kind} {lab}", "reason": reason, "key": key})
            continue
        specs.append((spec, where))
    return specs


def checked_params(cls: type, resolved: dict[str, Any], family: str, kind: str, where: str, fname: str, base: Path,
                   optional: bool) -> tuple[dict[str, Any], tuple[str, Path | str, str | None] | None]:
    """The one check every entry goes through: its class's ``check_params`` (:mod:`benchmark.params`; attacks and
    defenses are built by it), whose errors get the file and the key. Returns the parameters to use, and
    ``(key, path, message)`` of a file the check found missing, or None: ``key`` is the table's
    (``metrics[0].weights``), ``message`` the plugin's own words when they say more than "not found" (else None).
    The caller reports that file, or leaves the entry out when it is ``optional``.
    """
    try:
        out = cls.check_params(dict(resolved), base)
    except MissingWeightsError as exc:
        if exc.key is not None:  # a file the plugin's check located: its own words when they say where to get it
            return resolved, (f"{where}.{exc.key}", Path(exc.path), one_line(exc) if exc.hint else None)
        param = next((k for k, v in resolved.items() for p in paths(v) if str(exc.path).startswith(str(p))), None)
        key = f"{where}.{param}" if param else where
        if optional:  # found while building (a file inside a named folder, a package): the entry is left out
            return resolved, (key, exc.path, one_line(exc))
        raise ConfigError(one_line(exc), file=fname, key=key) from None
    except ConfigError as exc:
        key = exc.key if exc.key and exc.key.startswith(where) else f"{where}.{exc.key}" if exc.key else where
        raise ConfigError(f"{kind}: {exc.detail}", file=exc.file or fname, key=key) from None
    except Exception as exc:  # a plugin refusing a value, whatever it raises, is a config error
        text = file_problem(resolved, kind) if family in WEIGHTS_FAMILIES else None  # an unreadable checkpoint?
        if text:
            raise ConfigError(text[1], file=fname, key=f"{where}.{text[0]}") from None
        raise ConfigError(f"invalid value for {kind}: {exc_text(exc)}", file=fname, key=where) from None
    return (resolved if out is None else dict(out)), None


def absent_path(resolved: dict[str, Any]) -> tuple[str, Path] | None:
    """(parameter, path) of the first path-typed parameter (or path in a list parameter) naming nothing on disk."""
    for k, v in resolved.items():
        for item in paths(v):
            if not path_exists(item):
                return k, item
    return None


__all__ = ["ATTACK_TABLE_KEYS", "DEFAULT_EOT_SAMPLES", "ENTRY_META_KEYS", "MAX_EXPANSION", "PluginSpec", "TABLE_KEYS",
           "absent_path", "checked_params", "parse_entry", "table_keys"]
