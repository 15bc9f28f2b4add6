"""Values of a ``matrix.toml`` as the config layer checks and shows them: type coercion against a
plugin's annotations (``"8/255"`` is a number; numbers finite; integers 64-bit; paths resolved against
the config's folder), the limits on the parsed tree, and short one-line renderings for messages and labels.
"""
from __future__ import annotations

import inspect
import json
import math
import re
import reprlib
import types
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from .errors import BenchmarkError, ConfigError
from .registry import number_text

MAX_DEPTH = 16           # levels of nested tables/arrays in a config (deeper is a mistake, not a study)
INT64 = 2**63            # TOML integers are 64-bit; larger ones are refused, not silently widened
_EMPTY = inspect.Parameter.empty


def path_exists(p: Path) -> bool:
    """``p.exists()``, False instead of an error for names the system refuses (too long, ...)."""
    try:
        return p.exists()
    except (OSError, ValueError):
        return False


def same_value(value: Any, default: Any) -> bool:
    """``value`` equals the parameter's default (then it is left out of the canonical parameters)."""
    return isinstance(value, bool) == isinstance(default, bool) and jsonable(value) == jsonable(default)


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def join_key(where: str, key: Any) -> str:
    """``where.key`` with ``key`` quoted as TOML would need it (and shown on one line)."""
    k = str(key)
    k = k if _BARE_KEY.fullmatch(k) else json.dumps(k[:60] + ("…" if len(k) > 60 else ""))
    return f"{where}.{k}" if where else k


def label_text(v: Any) -> str:
    """A parameter value as it appears in a label: ``8/255``, ``0.5``, a file's name, ``[1,3]``."""
    if isinstance(v, float):
        return number_text(v)
    if isinstance(v, Path):
        return v.name
    if isinstance(v, dict):
        return "{" + ",".join(f"{k}={label_text(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(label_text(x) for x in v) + "]"
    return str(v)


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlist, _REPR.maxdict = 3, 60, 60, 6, 4


def show(value: Any) -> str:
    """A short, one-line ``repr`` of a user's value for messages (never fails, whatever its size)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        return f"a {int(value.bit_length() * math.log10(2)) + 1}-digit integer"
    try:
        return _REPR.repr(value)
    except Exception:
        return f"a {type(value).__name__}"


def one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 400 else text[:400] + "…"


def exc_text(exc: Exception) -> str:
    text = one_line(exc)
    return text if isinstance(exc, (ValueError, TypeError, BenchmarkError)) else f"{type(exc).__name__}: {text}"


def check_tree(value: Any, key: str, fname: str, depth: int, errs: list[ConfigError] | None = None) -> None:
    """Every number of the parsed TOML is finite and fits 64 bits; nesting is at most MAX_DEPTH deep.

    The first error is raised, or, given ``errs``, every error is appended to it."""
    problem = None
    if depth > MAX_DEPTH:
        problem = ConfigError(f"nested more than {MAX_DEPTH} levels deep", file=fname, key=key or None)
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        if not -INT64 <= value < INT64:
            problem = ConfigError(f"integer out of range: {show(value)} (integers are 64-bit)", file=fname, key=key)
    elif isinstance(value, float):
        if not math.isfinite(value):
            problem = ConfigError(f"expected a finite number, got {value}", file=fname, key=key)
    elif isinstance(value, dict):
        for k, v in value.items():
            check_tree(v, join_key(key, k), fname, depth + 1, errs)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_tree(v, f"{key}[{i}]", fname, depth + 1, errs)
    if problem is not None:
        problem.tree = True  # type: ignore[attr-defined]  (the config layer reports the value once)
        if errs is None:
            raise problem
        errs.append(problem)


def is_sequence_type(ann: Any) -> bool:
    origin = get_origin(ann)
    if origin in (Union, types.UnionType):
        return any(is_sequence_type(a) for a in get_args(ann) if a is not type(None))
    return origin in (list, tuple) or ann in (list, tuple)


def coerce(value: Any, ann: Any, fname: str, key: str, base: Path) -> Any:
    """Check ``value`` against the annotation ``ann`` and convert it; raise ConfigError naming the key."""

    def fail(expected: str) -> ConfigError:
        return ConfigError(f"expected {expected}, got {show(value)}", file=fname, key=key)

    if ann is _EMPTY or ann is Any:
        return value
    origin = get_origin(ann)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(ann) if a is not type(None)]
        if len(args) == 1:  # ``X | None``: TOML has no null, so the value must be an X (and say why not)
            return coerce(value, args[0], fname, key, base)
        for a in args:
            try:
                return coerce(value, a, fname, key, base)
            except ConfigError:
                continue
        raise fail(" or ".join(type_name(a) for a in args))
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
    plain = dict if (ann is dict or origin is dict) else ann if ann in (bool, str) else None
    if plain is not None:  # a table, true or false, a string: taken as written once the type is right
        if not isinstance(value, plain):
            raise fail(type_name(plain))
        return value
    if ann is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("an integer")
        if not -INT64 <= value < INT64:
            raise fail("a 64-bit integer")
        return value
    if ann is float:
        if isinstance(value, bool):
            raise fail("a number")
        number = None
        try:
            if isinstance(value, (int, float)):
                number = float(value)
            elif isinstance(value, str) and len(value) <= 100:
                number = float(Fraction(value.replace(" ", "")))
        except (ValueError, ZeroDivisionError):
            pass
        except OverflowError:  # "1e400"
            number = math.inf
        if number is None:
            raise fail('a number or a fraction such as "8/255"')
        if not math.isfinite(number):
            raise fail("a finite number")
        return number
    if ann is Path:
        if not isinstance(value, str) or not value or "\0" in value:
            raise fail("a path (a non-empty string)")
        try:
            p = Path(value).expanduser()
            return (p if p.is_absolute() else (base / p)).resolve()
        except (OSError, RuntimeError, ValueError) as exc:  # an unknown ~user, a name too long
            raise fail(f"a usable path ({one_line(exc)})") from None
    return value


_PHRASES = {float: "a number", int: "an integer", str: "a string", bool: "true or false", Path: "a path",
            dict: "a table", list: "a list", tuple: "a list"}


def type_name(a: Any) -> str:
    """How a message names the type ``a`` (``a number``, ``a list``)."""
    return _PHRASES.get(get_origin(a) or a, getattr(a, "__name__", str(a)))


def jsonable(v: Any) -> Any:
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in sorted(v.items())}
    return v
