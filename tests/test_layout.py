"""The package layout: imports go downward, trainers live in ``benchmark/training``, shared helpers have one
home, seeds never come from Python's salted ``hash()``, and no module imports another's private names.

Read from the source with ``ast`` (function-level imports included), so nothing heavy is imported. Each
layer imports only from the layers below it:

    cli, __main__
    reports                                          pages and tables, from stored records only
    records, measures                                the per-image table and the summaries
    runner, executors, calibrate, manifest, passes   stages and their execution
    training (default_model, denoiser)               trainers, on top of the plugins they train and use
    datasets, metrics, attacks, defenses             plugin families (UAP uses training.trainset, which
                                                     sits below them)
    base: errors, params, seeds, weights, images, photos, quality, schema, store, config, registry, ...
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "benchmark"
FAMILIES = ("datasets", "metrics", "attacks", "defenses")
ORCHESTRATION = ("runner", "executors", "stages", "calibrate", "manifest", "passes", "records", "measures", "reports",
                 "cli", "__main__")


def parse() -> dict[str, tuple[ast.Module, str]]:
    """Every module of the package: its syntax tree and the package its relative imports start from."""
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_pkg else parts)
        out[name] = (ast.parse(path.read_text(encoding="utf-8"), str(path)), name if is_pkg else name.rsplit(".", 1)[0])
    return out


MODULES = parse()


def imports(name: str) -> list[tuple[str, list[str], int]]:
    """``(imported module, imported names, line)`` of every benchmark import of a module, at any depth;
    ``from . import quality`` also counts as an import of ``benchmark.quality``."""
    tree, package = MODULES[name]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "benchmark":
                names = [a.name for a in node.names]
                out.append((target, names, node.lineno))
                out += [(f"{target}.{n}", [], node.lineno) for n in names if f"{target}.{n}" in MODULES]
        elif isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names if a.name.split(".")[0] == "benchmark"]
    return out


def part(module: str) -> str:
    """The top-level part of the package a module belongs to (``benchmark.attacks.pgd`` -> ``attacks``)."""
    bits = module.split(".")
    return bits[1] if len(bits) > 1 else ""


def offending(source, target) -> list[str]:
    """``module:line imports other`` for every import from a module ``source`` accepts of one ``target`` accepts."""
    return [f"{name}:{line} imports {imported}" for name in MODULES if source(name)
            for imported, _, line in imports(name) if target(imported)]


def main_guards(tree: ast.Module) -> list[ast.If]:
    return [n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test)]


def test_the_trainers_live_in_the_training_package_with_one_entry_point_each():
    for trainer in ("default_model", "denoiser"):
        tree, _ = MODULES[f"benchmark.training.{trainer}"]
        assert main_guards(tree) and any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body)
    for name, (tree, _) in MODULES.items():  # no command-line program inside a plugin folder
        if part(name) in FAMILIES:
            assert not main_guards(tree), name
            assert not [a for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
                        if a.name == "argparse"], name


def test_defenses_import_neither_attacks_nor_training():
    assert offending(lambda n: part(n) == "defenses", lambda t: part(t) in ("attacks", "training")) == []


def test_plugin_families_import_only_downward():
    assert offending(lambda n: part(n) in FAMILIES, lambda t: part(t) in ORCHESTRATION) == []
    # UAP builds its training set through training.trainset; no plugin imports a trainer
    shared = ("benchmark.training", "benchmark.training.trainset")
    assert offending(lambda n: part(n) in FAMILIES, lambda t: part(t) == "training" and t not in shared) == []
    assert offending(lambda n: part(n) in ("datasets", "metrics"), lambda t: part(t) in ("attacks", "defenses")) == []
    assert offending(lambda n: part(n) == "datasets", lambda t: part(t) == "metrics") == []
    assert offending(lambda n: part(n) == "metrics", lambda t: part(t) == "datasets") == []
    assert offending(lambda n: part(n) == "attacks", lambda t: part(t) == "defenses") == []


def test_the_shared_training_set_builder_sits_below_the_plugins():
    trainers = ("benchmark.training.default_model", "benchmark.training.denoiser")
    assert offending(lambda n: n == "benchmark.training.trainset",
                     lambda t: part(t) in ("metrics", "attacks", "defenses") or t in trainers) == []


def test_shared_helpers_and_results_import_no_plugin_and_no_later_stage():
    base = ("errors", "params", "seeds", "weights", "images", "photos", "quality", "perceptual", "schema",
            "correlation", "certify")
    assert offending(lambda n: part(n) in base, lambda t: part(t) in FAMILIES + ("training",) + ORCHESTRATION) == []
    assert offending(lambda n: part(n) in ("records", "measures"),
                     lambda t: part(t) in FAMILIES + ("training", "runner", "executors", "reports", "cli")) == []
    assert offending(lambda n: part(n) == "reports", lambda t: part(t) in FAMILIES + ("training", "cli")) == []


def test_reports_import_nothing_from_the_stage_layer():
    """Pages and tables read stored records only: no runner, executor, calibration, manifest writer or pass
    counter (the report's recomputed images batch them with ``images.batches``, as the stages do)."""
    stage_layer = ("runner", "executors", "stages", "calibrate", "manifest", "passes")
    assert offending(lambda n: part(n) == "reports", lambda t: part(t) in stage_layer) == []


def test_no_salted_hash_anywhere():
    calls = [f"{name}:{node.lineno}" for name, (tree, _) in MODULES.items() for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "hash"]
    assert calls == []


def test_no_module_imports_another_modules_private_names():
    private = [f"{name}:{line} imports {n} from {target}" for name in MODULES
               for target, names, line in imports(name) for n in names
               if n.startswith("_") and not n.startswith("__")]
    assert private == []


@pytest.mark.parametrize("moved, home", [
    ("seed_from", "benchmark.seeds"), ("digest_seed", "benchmark.seeds"),
    ("weights_guard", "benchmark.weights"), ("offline_requested", "benchmark.weights"),
    ("load_checkpoint", "benchmark.weights"), ("check_weights_file", "benchmark.weights"),
    ("save_checkpoint", "benchmark.weights"), ("GENERIC_RESAVE", "benchmark.weights"),
    ("jpeg_roundtrip", "benchmark.images"), ("batches", "benchmark.images"), ("load_photo", "benchmark.photos"),
    ("square", "benchmark.photos"), ("TRAIN_PHOTOS", "benchmark.photos"), ("TEST_PHOTOS", "benchmark.photos"),
    ("build_set", "benchmark.training.trainset"), ("uap_images", "benchmark.training.trainset"),
])
def test_each_shared_helper_is_defined_once(moved, home):
    def defines(node: ast.stmt) -> bool:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            return node.name == moved
        return isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == moved for t in node.targets)

    homes = [name for name, (tree, _) in MODULES.items() for node in tree.body if defines(node)]
    assert homes == [home]


def test_one_seed_function_keys_every_draw():
    from benchmark.seeds import digest_seed, seed_from

    # the stored runs' seeds: sha256 of the JSON of the parts, first 8 bytes little-endian, mod 2**63
    assert seed_from(0, "abc") == digest_seed('[0, "abc"]') == 455986587632839575
    # the built-in photographs' distortions: the text key of the synthetic dataset's image ids
    assert digest_seed("astronaut/noise2") == 3423274551879963419


def test_the_schema_names_the_per_image_means_of_the_summary():
    import pandas as pd

    from benchmark.measures import record_means

    pairs = [f"{q}_{p}" for q in ("psnr", "ssim", "ms_ssim", "lpips", "dists")
             for p in ("attack", "def_adv", "def_clean")]
    per_image = pairs + ["linf_attack", "l2_attack", "seconds_def_clean", "seconds_def_adv"]
    records = pd.DataFrame({c: [1.0, 2.0] for c in per_image + ["psnr_def_adv_aligned", "score", "cert_lo_clean"]})
    means = record_means(records)
    assert sorted(means) == sorted(per_image) and set(means.values()) == {1.5}


def runtime_imports(name: str) -> set[str]:
    """The package modules ``name`` imports when it runs, at any depth (function-level imports included), leaving
    out imports only for type checkers (``if TYPE_CHECKING:``) and a submodule's import of its own parent
    package (always initialised first)."""
    tree, _ = MODULES[name]
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(block.test) for n in ast.walk(block)}
    lines = {n.lineno for n in ast.walk(tree) if id(n) in typing_only and hasattr(n, "lineno")}
    return {imported for imported, _, line in imports(name) if imported in MODULES and imported != name
            and line not in lines and not name.startswith(imported + ".")}


def test_no_import_cycle_function_level_imports_included():
    graph = {m: runtime_imports(m) for m in MODULES}
    state: dict[str, int] = {}   # 1 on the current path, 2 done
    cycles: list[list[str]] = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append(path[path.index(n):] + [n] if n in path else [m, n])
            elif n not in state:
                visit(n, path + [n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert cycles == [], "\n".join(" -> ".join(c) for c in cycles)


def test_no_module_reaches_into_another_objects_private_attributes():
    """``obj._name`` only on ``self``/``cls``: executors call the runner's public methods, helpers keep their own
    state (third-party modules' private attributes, e.g. Ray's, are outside this package's contract)."""
    third_party = {"ray", "torch", "np", "pd", "pyiqa", "kornia", "sys", "os"}
    found = []
    for name, (tree, _) in MODULES.items():
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and not (isinstance(node.value, ast.Name) and node.value.id in {"self", "cls", *third_party})):
                found.append(f"{name}:{node.lineno} {ast.unparse(node)}")
    assert found == []


def readme_map() -> list[list[str]]:
    """The README's module map (the block after ``<!-- module map -->``): one layer a line, top first, its
    modules and packages (``name/``) comma-separated before the description."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- module map -->", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    layers = []
    for line in block.strip("\n").splitlines():
        if not line.strip() or line.startswith(" "):   # a description's continuation
            continue
        names = line.split("  ", 1)[0]
        layers.append([n.strip().rstrip("/") for n in names.split(",") if n.strip()])
    return layers


def test_the_readme_module_map_is_the_code():
    """Every module of the package is in one layer of the README's map, and imports only from its own layer
    or the layers below (function-level imports included): the map a newcomer reads is the code."""
    layers = readme_map()
    rank = {name: i for i, layer in enumerate(layers) for name in layer}

    def layer(module: str) -> int | None:  # the map's most specific entry: "training.trainset" before "training"
        bits = module.split(".")[1:]
        return next((rank[".".join(bits[:k])] for k in range(len(bits), 0, -1) if ".".join(bits[:k]) in rank), None)

    named = {n.split(".", 1)[1] for n in MODULES if n != "benchmark"}
    assert sorted(n for n in named if layer(f"benchmark.{n}") is None) == []
    assert sorted(k for k in rank if not any(n == k or n.startswith(k + ".") for n in named)) == []
    up = [f"{n} imports {t}, line {line}" for n in MODULES if n != "benchmark" for t, _, line in imports(n)
          if t != "benchmark" and layer(t) is not None and layer(t) < layer(n)]
    assert up == []


def declared_capabilities() -> set[str]:
    """The class attributes the plugin families' base classes declare (their capabilities and defaults)."""
    names = set()
    for fam in FAMILIES:
        tree, _ = MODULES[f"benchmark.{fam}.base"]
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                        names.add(item.target.id)
                    elif isinstance(item, ast.Assign):
                        names |= {t.id for t in item.targets if isinstance(t, ast.Name)}
    return {n for n in names if not n.startswith("_")}


def test_capabilities_are_read_as_declared_attributes_never_probed():
    """``getattr(plugin, "stochastic", False)`` hides a capability the base class declares: read the attribute."""
    caps = declared_capabilities()
    assert {"stochastic", "differentiable", "baseline", "wraps_metric", "needs_gradient", "threat_model"} <= caps
    probes = [f"{name}:{node.lineno} getattr(..., {node.args[1].value!r})"
              for name, (tree, _) in MODULES.items() for node in ast.walk(tree)
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
              and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and node.args[1].value in caps]
    assert probes == []
