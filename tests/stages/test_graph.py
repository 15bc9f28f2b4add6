"""The stage graph is the one contract between planning and running: every stage is declared with its key, deps
and inputs, in dependency order, and each stage's function runs alone, in a fresh process's runner, from the
records and files its deps stored."""
from __future__ import annotations

import json

import pytest

from benchmark.config import load_config
from benchmark.runner import Runner, plan, stage_graph
from benchmark.stages.graph import RECORD_KINDS, kinds

from conftest import CNNIQA_WEIGHTS, folder_config, need_shared, write_image_folder

TABLES = """
[[metrics]]
name = "default"
[[metrics]]
name = "cnniqa"
weights = "{cnniqa}"
[[attacks]]
name = "fgsm"
eps = "4/255"
[[defenses]]
name = "identity"
[[defenses]]
name = "jpeg"
quality = 50
[[defenses]]
name = "median_smoothing"
sigma = 0.1
n = 4
"""


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("graph")
    images = write_image_folder(tmp / "images")
    cfg = load_config(folder_config(tmp, "graph", images, TABLES.format(cnniqa=need_shared(CNNIQA_WEIGHTS)), limit=3,
                                    run_extra="batch_size = 2"))
    run_dir = cfg.run.output_dir / cfg.run.name
    run_dir.mkdir(parents=True)
    assert Runner(cfg, run_dir, progress=False).run() == 0
    return cfg, run_dir


def test_every_kind_is_declared_in_dependency_order():
    table = kinds()
    assert list(table) == ["clean", "def_quality", "fit", "attack", "def_clean", "def_adv", "strip"]
    names = list(table)
    for i, k in enumerate(table.values()):
        assert set(k.deps) <= set(names[:i]), k      # reads only kinds declared before it
        assert k.doc and callable(k.run)
    assert not table["def_quality"].uses_metric  # D(x) is shared by every metric


def test_the_graph_lists_each_shared_stage_once_after_its_deps(small_run):
    cfg, _ = small_run
    cells = plan(cfg)
    graph = stage_graph(cells, "cpu")
    seen = set()
    for key, st in graph.items():
        assert st.key == key and set(st.deps.values()) <= seen, st.kind
        assert "images" in st.inputs and st.resources == {"num_cpus": 1, "num_gpus": 0}
        seen.add(key)
    kinds_of = [st.kind for st in graph.values()]
    # 2 metrics x (fgsm, fgsm+adaptive vs jpeg and smoothing): clean per metric, D(x) per metric-independent defense
    assert kinds_of.count("clean") == 2 and kinds_of.count("def_quality") == 2   # identity, jpeg; smoothing wraps f
    assert kinds_of.count("def_clean") == 2 * 3 and kinds_of.count("def_adv") == len(cells) == 2 * 5
    assert all("def_quality" not in c.keys for c in cells if c.defense.name == "median_smoothing")


@pytest.mark.parametrize("kind", ["def_clean", "def_adv", "attack"])
def test_a_stage_runs_alone_from_its_stored_inputs(small_run, kind):
    """Delete one stored stage, then run only that stage in a fresh runner (nothing built, nothing cached): its
    record is the one the whole run stored (timing aside)."""
    cfg, run_dir = small_run
    cells = plan(cfg)
    cell = next(c for c in cells if c.defense.name == "jpeg" and c.metric.name == "cnniqa" and c.attack.adaptive)
    path = run_dir / "stages" / kind / f"{cell.keys[kind]}.json"
    before = json.loads(path.read_text())
    path.unlink()
    runner = Runner(cfg, run_dir, progress=False)
    graph = runner.prepare(cells)
    out = runner.run_stage(graph[cell.keys[kind]])
    assert out.status == "stored" and path.is_file()
    after = json.loads(path.read_text())
    timing = lambda r: {k: v for k, v in r.items() if "seconds" not in k}  # noqa: E731
    assert [timing(r) for r in after["records"]] == [timing(r) for r in before["records"]]
    assert after["model_passes"] == before["model_passes"] or kind == "attack"


def test_def_clean_scores_the_stored_d_of_x_without_purifying(small_run):
    _, run_dir = small_run
    passes = json.loads((run_dir / "passes.json").read_text())["stages"]
    for r in passes:
        if r["stage"] == "def_clean":
            assert r["defense_passes"] == 0, r
        if r["stage"] in RECORD_KINDS:
            assert r["forward"] - r["repeat"] == r["min_forward"], r


def test_a_universal_attack_is_fitted_once_for_every_dataset(tmp_path, image_folder):
    """A needs_fit attack (UAP) gets a ``fit`` stage per (metric, attack), shared by the attack stages of every
    dataset, which run after it and load its artifact."""
    second = tmp_path / "second"
    second.mkdir()
    for p in image_folder.iterdir():
        (second / p.name).write_bytes(p.read_bytes())
    tables = f"""
[[datasets]]
name = "folder"
root = "{second}"
mos_csv = "{second / 'mos.csv'}"
limit = 2
[[metrics]]
name = "default"
[[attacks]]
name = "uap"
size = 64
epochs = 1
[[defenses]]
name = "identity"
"""
    cfg = load_config(folder_config(tmp_path, "uap", image_folder, tables, limit=2))
    cells = plan(cfg)
    graph = stage_graph(cells, "cpu")
    fits = [st for st in graph.values() if st.kind == "fit"]
    assert len(cells) == 2 and len(fits) == 1
    attacks = [st for st in graph.values() if st.kind == "attack"]
    assert len(attacks) == 2 and all(st.deps == {"fit": fits[0].key} for st in attacks)
    run_dir = cfg.run.output_dir / cfg.run.name
    run_dir.mkdir(parents=True)
    assert Runner(cfg, run_dir, progress=False).run() == 0
    assert len(list((run_dir / "artifacts").glob("uap-*.pt"))) == 1
    (record,) = [json.loads(p.read_text()) for p in (run_dir / "stages" / "fit").glob("*.json")]
    assert record["artifact"].startswith("artifacts/uap-")
