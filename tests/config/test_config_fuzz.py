"""Property-based fuzzing of ``python -m benchmark validate`` (issues #13, #25): a valid config mutated the way a
careless or hostile user would (wrong types, nan/inf, huge integers, deep nesting, unknown keys, empty
lists, negative numbers, strings for numbers, bad paths) either validates (exit 0) or ends with exit status 2
and one line per error on stderr (every error of the config at once, each naming the file and a key) —
never a traceback, never another exception — and writes nothing.
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import tempfile
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from benchmark.cli import main  # noqa: E402

BASE = {
    "run": {"name": "fuzz", "output_dir": "runs", "device": "cpu", "batch_size": 4, "seed": 0, "image_size": 64},
    "datasets": [{"name": "synthetic", "levels": [1, 5], "limit": 4, "size": 176}],
    "metrics": [{"name": "default"}],
    "attacks": [{"name": "pgd", "eps": "4/255", "steps": 2}, {"name": "fgsm", "eps": "2/255"}],
    "defenses": [{"name": "identity"}, {"name": "jpeg", "quality": 40}, {"name": "median", "kernel": 3}],
}
# keys a mutation may touch besides those of BASE: parameters of other plugins, meta keys, typos
EXTRA_KEYS = ["alpha", "restarts", "norm", "direction", "random_start", "label", "optional", "adaptive",
              "eot_samples", "weights", "root", "mos_csv", "mos_range", "score_range", "distortions", "split",
              "include_pristine", "surrogate", "sigma", "scale", "epss", "", "a\nb", "name"]
NAMES = {  # per family: mostly real plugins (so that mutations reach their checks), some wrong names
    "datasets": ["synthetic", "folder", "koniq10k", "live2", "tid2013", "pgd", "no_such_plugin", ""],
    "metrics": ["default", "cnniqa", "pyiqa", "torchscript", "torch_module", "jpeg", "no_such_plugin"],
    "attacks": ["pgd", "fgsm", "ifgsm", "mifgsm", "madc", "korhonen", "square", "uap", "median", "pgdd"],
    "defenses": ["jpeg", "median", "resize", "gaussian_blur", "quantize", "flip", "random_crop", "random_noise",
                 "random_rotate", "bilateral", "unsharp", "median_smoothing", "cohen_smoothing", "dncnn", "fgsm"],
}
FAMILIES = list(NAMES)


class Raw:
    """A TOML literal written verbatim (values Python cannot hold or print: 5000 digits, 500-deep arrays)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({self.text[:40]!r}…)"


def toml_value(v) -> str:
    if isinstance(v, Raw):
        return v.text
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if v != v else ("inf" if v == float("inf") else "-inf" if v == float("-inf") else repr(v))
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def toml_key(k: str) -> str:
    return k if k and all(c.isalnum() or c in "_-" for c in k) and k.isascii() else json.dumps(k, ensure_ascii=False)


def to_toml(cfg: dict) -> str:
    out = []
    for section, body in cfg.items():
        if isinstance(body, dict):
            out.append(f"[{toml_key(section)}]")
            out += [f"{toml_key(k)} = {toml_value(v)}" for k, v in body.items()]
        elif isinstance(body, list) and body and all(isinstance(e, dict) for e in body):
            for entry in body:
                out.append(f"[[{toml_key(section)}]]")
                out += [f"{toml_key(k)} = {toml_value(v)}" for k, v in entry.items()]
        else:
            out.insert(0, f"{toml_key(section)} = {toml_value(body)}")  # top-level keys before any table
    return "\n".join(out) + "\n"


text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
scalars = st.one_of(
    st.integers(-3, 300),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 0.0, -0.5, 1e-300, 1e300, 2**63, -(2**63) - 1]),
    st.sampled_from(["1e400", "-1e400", "nan", "inf", "8/255", "1/0", "0/1", "-4/255", "2", "1e-3", "abc", "",
                     "cuda", "cuda:7", "banana", "keep", "linf", "l2", "increase", "test", "../../etc/passwd",
                     "niqe", "musiq", "psnr", "torch.nn:Identity", "os:system",
                     "/nonexistent/weights.pt", "absent.pt", "~nosuchuser/x", "x" * 300, "a\nb", "\x00"]),
    st.booleans(),
    text,
)
raw_values = st.sampled_from([Raw("9" * 5000), Raw("-" + "7" * 4400), Raw("[" * 500 + "1" + "]" * 500),
                              Raw("[" * 40 + "]" * 40), Raw("{a = " * 30 + "1" + "}" * 30), Raw("1979-05-27"),
                              Raw("1e400"), Raw("-nan"), Raw("0x7fffffffffffffff"), Raw("[]"), Raw("{}")])
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.sampled_from(EXTRA_KEYS), inner, max_size=3)),
                      max_leaves=6) | raw_values | st.just([])

mutation = st.one_of(
    # set (or add) a key of a plugin table
    st.tuples(st.just("entry"), st.sampled_from(["datasets", "metrics", "attacks", "defenses"]), st.integers(0, 3),
              st.sampled_from(EXTRA_KEYS + ["eps", "steps", "quality", "kernel", "levels", "limit", "size"]), values),
    # swap a plugin for another of the family (with the parameters drawn for it)
    st.sampled_from(FAMILIES).flatmap(lambda fam: st.tuples(
        st.just("name"), st.just(fam), st.integers(0, 3), st.sampled_from(NAMES[fam]),
        st.dictionaries(st.sampled_from(EXTRA_KEYS + ["eps", "steps", "quality", "kernel", "levels", "limit", "size",
                                                      "bits", "n", "p", "axis", "interpolation", "queries",
                                                      "amplitude", "decay", "lr", "dilation", "t_star", "path",
                                                      "factory", "kwargs", "lower_better", "resolution",
                                                      "metric", "options", "pretrained_model_path"]),
                        values, max_size=3))),
    # set (or add) a key of [run]
    st.tuples(st.just("run"), st.just("run"), st.just(0),
              st.sampled_from(["name", "output_dir", "device", "batch_size", "seed", "image_size", "size_policy",
                               "plugins", "lpips", "dists", "nme", "executor"]), values),
    # drop a key or a section, or replace a whole section
    st.tuples(st.just("delete"), st.sampled_from(["run", "datasets", "metrics", "attacks", "defenses"]),
              st.integers(0, 3), st.sampled_from(["", "name", "eps", "levels", "quality", "limit"]), st.none()),
    st.tuples(st.just("section"), st.sampled_from(["run", "datasets", "metrics", "attacks", "defenses", "extra"]),
              st.just(0), st.just(""), values),
)


def mutate(cfg: dict, m: tuple) -> None:
    """Apply one mutation (one that no longer finds its target, after an earlier one, does nothing)."""
    kind, section, index, key, value = m
    body = cfg.get(section)
    if kind == "run":
        if isinstance(body, dict):
            body[key] = value
    elif kind == "section":
        cfg[section] = value
    elif kind == "delete":
        if not key:
            cfg.pop(section, None)
        elif isinstance(body, list) and body and isinstance(body[index % len(body)], dict):
            body[index % len(body)].pop(key, None)
        elif isinstance(body, dict):
            body.pop(key, None)
    elif isinstance(body, list) and body and isinstance(body[index % len(body)], dict):
        entry = body[index % len(body)]
        if kind == "name":
            entry.clear()
            entry["name"] = key
            if isinstance(value, dict):
                entry.update(value)
        else:
            entry[key] = value


def validate(path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["-q", "validate", str(path)])
    return rc, out.getvalue(), err.getvalue()


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "500")), deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(mutation, min_size=1, max_size=3))
def test_validate_exits_0_or_2_with_one_line_and_writes_nothing(mutations):
    cfg = copy.deepcopy(BASE)
    for m in mutations:
        mutate(cfg, m)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "matrix.toml"
        path.write_text(to_toml(cfg), encoding="utf-8")
        before = sorted(p.name for p in Path(tmp).rglob("*"))
        cwd = os.getcwd()
        os.chdir(tmp)  # a relative output_dir would land here if validate wrote anything
        try:
            rc, out, err = validate(path)
        finally:
            os.chdir(cwd)
        assert sorted(p.name for p in Path(tmp).rglob("*")) == before, "validate wrote files"
    assert rc in (0, 2), (rc, err)
    assert "Traceback" not in err
    if rc == 2:
        lines = err.splitlines()
        assert err.endswith("\n") and lines and all(line.startswith(f"error: {path}") for line in lines), err
        assert len(lines) == len(set(lines)), err          # each error once
        assert all(len(line) < 2000 for line in lines), err
    else:
        assert err == "" and "valid;" in out


def test_the_unmutated_config_is_valid(tmp_path):
    path = tmp_path / "matrix.toml"
    path.write_text(to_toml(BASE))
    rc, out, err = validate(path)
    assert rc == 0 and err == "" and "valid; " in out and "(1 datasets x 1 metrics x 2 attacks x 3 defenses)" in out


def test_the_toml_writer_round_trips(tmp_path):
    import tomllib

    cfg = copy.deepcopy(BASE)
    cfg["attacks"][0]["label"] = 'odd "label"\n\x7f'
    cfg["attacks"][0]["options"] = {"a b": [1.5, -2, True]}
    assert tomllib.loads(to_toml(cfg)) == cfg
