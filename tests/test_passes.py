"""Model-pass accounting: each stage's forward/backward passes of the metric next to the minimum (passes.json)."""
from __future__ import annotations

import json

import pytest
import torch

from benchmark import passes
from benchmark.config import load_config
from benchmark.runner import Runner
from benchmark.stages.graph import RECORD_KINDS
from benchmark.store import RunStore

from conftest import fgsm_pgd_tables, folder_config

MATRIX = fgsm_pgd_tables()


def test_passes_per_stage_against_the_minimum(tmp_path, image_folder):
    cfg = load_config(folder_config(tmp_path, "passes", image_folder, MATRIX, limit=4, run_extra="batch_size = 4"))
    run_dir = cfg.run.output_dir / cfg.run.name
    run_dir.mkdir(parents=True)
    assert Runner(cfg, run_dir, progress=False).run() == 0
    out = json.loads((run_dir / "passes.json").read_text())
    by = {}
    for r in out["stages"]:
        what = {"clean": "", "attack": r["attack"], "def_clean": r["defense"], "def_adv": f"{r['attack']} {r['defense']}",
                "def_quality": r["defense"], "strip": f"strip {r['attack']} {r['defense']}"}
        assert r["forward"] - r["repeat"] >= r["min_forward"] and r["min_backward"] == r["backward"]
        # (needed forward passes, backward passes, minimum forward passes)
        by[(r["stage"], what[r["stage"]])] = (r["forward"] - r["repeat"], r["backward"], r["min_forward"])
    n, fgsm, pgd = 4, "fgsm(eps=4/255)", "pgd(eps=4/255,steps=3)"
    jpeg = next(r["defense"] for r in out["stages"] if r["defense"].startswith("jpeg"))
    assert len([k for k in by if k[0] in RECORD_KINDS]) == 1 + 2 + 2 + 4
    assert by[("def_quality", jpeg)] == (0, 0, 0)   # D(x) and its quality: no metric
    assert by[("clean", "")] == (n, 0, n)
    # FGSM: one gradient pass at x, and the score of x' (a new image)
    assert by[("attack", fgsm)] == (2 * n, n, 2 * n)
    # PGD, 3 steps: 3 gradient passes and one score of x_3 (the attack's final objective); a re-score of x_3
    # by the runner, if any, is counted as a repeat
    pgd_row = next(r for r in out["stages"] if r["stage"] == "attack" and r["attack"] == pgd)
    assert by[("attack", pgd)] == (4 * n, 3 * n, 4 * n) and pgd_row["forward"] in (4 * n, 5 * n)
    # identity's purified images are the clean and attacked images already scored: minimum 0
    assert by[("def_clean", "identity")][2] == 0 and by[("def_clean", jpeg)] == (n, 0, n)
    for a in (fgsm, pgd):
        assert by[("def_adv", f"{a} identity")][2] == 0 and by[("def_adv", f"{a} {jpeg}")] == (n, 0, n)
    t = out["totals"]["all"]
    rec = [r for r in out["stages"] if r["stage"] in RECORD_KINDS]
    assert sum(r["min_forward"] for r in rec) == n * (1 + 2 + 4 + 1 + 2) and t["backward"] == 4 * n
    assert t["forward"] == sum(r["forward"] for r in out["stages"]) >= t["min_forward"]
    assert t["forward_ratio"] == t["forward"] / t["min_forward"] and t["backward_ratio"] == 1.0


class _Sum(torch.nn.Module):
    """A stand-in metric: the mean of each image (differentiable, cheap)."""

    def forward(self, x):
        return x.mean((1, 2, 3))


def _stage(metric, x, x2):
    """Two gradient steps (at x, then x2), then no-grad scores of [x2, x2, fresh] and of x: the runner's shape."""
    with passes.counting() as c:
        for xs in (x, x2):
            metric(xs.clone().requires_grad_(True)).sum().backward()
        with torch.no_grad():
            metric(torch.cat([x2[:1], x2[:1], torch.rand_like(x[:1])]))
            metric(x)
    waiting = len(c._pending)  # forward passes whose fingerprints are still on the device
    return c.as_dict(), waiting


@pytest.mark.parametrize("resolve_every", [1, 2, 256])
def test_repeats_are_no_grad_scores_of_images_any_earlier_pass_scored(monkeypatch, resolve_every):
    # fingerprints wait on the metric's device and are compared in batches: the counts never depend on when
    monkeypatch.setattr(passes, "_RESOLVE_EVERY", resolve_every)
    metric = passes.instrument(_Sum())
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    x2 = x + 1 / 255
    # 3+3 gradient images, then 3 scored (x2[0] twice in one batch: a repeat of the gradient pass, not of each
    # other, since a batch repeats only earlier passes), then x (3 repeats of the first gradient pass)
    counts, waiting = _stage(metric, x, x2)
    assert counts == {"forward": 12, "backward": 6, "repeat": 2 + 3, "defense": 0, "decodes": 0}
    assert waiting == 4 % resolve_every  # compared (one transfer) only every resolve_every passes, and when read


def test_fingerprints_are_exact(monkeypatch):
    x = torch.rand(40, 3, 5, 7, generator=torch.Generator().manual_seed(1))
    fp = passes.fingerprint(x)
    assert fp.dtype == torch.int64 and fp.shape == (40,)
    monkeypatch.setattr(passes, "_CHUNK", 6 * 3 * 5 * 7 + 1)  # 6 images a chunk: the same fingerprints
    assert torch.equal(passes.fingerprint(x), fp)
    assert torch.equal(passes.fingerprint(x.clone()), fp) and len(set(fp.tolist())) == 40
    y = x.clone()
    y[33, 2, 4, 6] = torch.nextafter(y[33, 2, 4, 6], torch.tensor(2.0))  # one ulp of one pixel
    assert (passes.fingerprint(y) != fp).tolist() == [i == 33 for i in range(40)]


def test_stored_passes_reads_the_record_only_up_to_its_passes(tmp_path):
    store = RunStore(tmp_path)
    rows = [{"image_id": f"img{i:05d}", "score": i / 7, "score_adv": -i / 3} for i in range(20000)]
    counts = {"forward": 40, "backward": 30, "repeat": 4}
    store.save("attack", "k", {"attack_meta": {"budget": 1.0}, "model_passes": counts, "records": rows})
    path = store.stage_path("attack", "k")
    assert passes.stored_passes(path) == counts == store.load("attack", "k")["model_passes"]
    # the per-image records after the member are never read: cutting the file after it changes nothing
    text = path.read_text()
    path.write_text(text[:text.index('"records"') + 200])
    assert passes.stored_passes(path) == counts
    # a record written otherwise (no indent) is parsed whole; one without passes, or none at all, gives None
    path.write_text(json.dumps({"records": rows[:3], "model_passes": counts}))
    assert passes.stored_passes(path) == counts
    path.write_text(json.dumps({"key": "k", "records": rows[:3]}, indent=1, sort_keys=True))
    assert passes.stored_passes(path) is None
    assert passes.stored_passes(tmp_path / "absent.json") is None


THREE_METRICS = """
[[metrics]]
name = "default"
[[metrics]]
name = "cnniqa"
weights = "{cnniqa}"
[[metrics]]
name = "cnniqa"
weights = "{cnniqa}"
score_range = [0, 50]
[[attacks]]
name = "fgsm"
eps = "4/255"
adaptive = false
[[attacks]]
name = "ifgsm"
eps = "4/255"
steps = 2
adaptive = false
[[defenses]]
name = "gaussian_blur"
[[defenses]]
name = "jpeg"
quality = 50
"""


def test_three_metrics_share_one_d_of_x_and_one_decode_per_attack(tmp_path, image_folder, cnniqa_weights):
    """D(x) of a metric-independent defense is computed once per (dataset, defense) for all 3 metrics, each
    metric's def_clean scores the stored D(x) (no defense pass), and each attack's stored images are decoded
    once for all the defenses that read them: every count at its minimum."""
    n = 4
    cfg = load_config(folder_config(tmp_path, "three", image_folder, THREE_METRICS.format(cnniqa=cnniqa_weights),
                                    limit=n, run_extra="batch_size = 2"))
    run_dir = cfg.run.output_dir / cfg.run.name
    run_dir.mkdir(parents=True)
    assert Runner(cfg, run_dir, progress=False).run() == 0
    out = json.loads((run_dir / "passes.json").read_text())
    rows = {k: [r for r in out["stages"] if r["stage"] == k] for k in RECORD_KINDS + ("def_quality",)}
    assert len(rows["def_quality"]) == 2 and all(r["defense_passes"] == n for r in rows["def_quality"])
    assert len(rows["def_clean"]) == 3 * 2 and all(r["defense_passes"] == 0 for r in rows["def_clean"])
    assert all(r["forward"] == n for r in rows["def_clean"])           # scores of the stored D(x), once
    assert len(rows["def_adv"]) == 3 * 2 * 2 and all(r["defense_passes"] == n for r in rows["def_adv"])
    # 6 attack stages (3 metrics x 2 attacks), each read by 2 defenses: decoded once
    assert sum(r["decodes"] for r in rows["def_adv"]) == 6 * n
    for kind in ("def_quality", "def_clean", "def_adv"):
        t = out["totals"][kind]
        assert t["forward"] == t["min_forward"] and t["defense_passes"] == t["min_defense"]
        assert t["decodes"] == t["min_decodes"]
    # D(x) files: the blur's off the 8-bit grid (float32), the JPEG's on it (PNG), both exact
    files = sorted(p.suffix for p in (run_dir / "stages" / "def_quality").rglob("*.*") if p.suffix != ".json")
    assert files == [".npy"] * n + [".png"] * n
