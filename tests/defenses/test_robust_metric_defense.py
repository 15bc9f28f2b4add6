"""The robust_metric defense: the fine-tuned metric in place of its base metric, adaptive attacks through it,
cells of another metric skipped, clear errors for missing or foreign checkpoints, and its leaderboard row."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import folder_config

from benchmark.attacks.adaptive import DefendedMetric
from benchmark.cli import main
from benchmark.defenses.robust_metric import RobustMetric, metric_spec
from benchmark.errors import ConfigError, MissingWeightsError
from benchmark.metrics.default_model import WEIGHTS, DefaultModel
from benchmark.photos import TRAIN_PHOTOS, load_photo
from benchmark.training.robust_metric import scores_of, train
from benchmark.training.trainset import distorted_set

SETTINGS = {"method": "fgsm", "eps": 4 / 255, "labels": "min", "penalty": 1.0, "attack_steps": 3,
            "nt_weight": 1e-3, "nt_h": 1e-2}


def fine_tune(out: Path, epochs: int = 1) -> Path:
    """A robust default model from one short epoch on 48-px training images (a second on a CPU)."""
    spec = metric_spec("default", {})
    _, x = distorted_set({p: load_photo(p) for p in TRAIN_PHOTOS[:2]}, 48, (1, 5))
    metric = spec.build().eval()
    train(metric, spec, x, scores_of(metric, x, torch.device("cpu")), settings=SETTINGS, out=out, epochs=epochs,
          batch=8, lr=1e-3, seed=0, progress=False)
    return out


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return fine_tune(tmp_path_factory.mktemp("robust") / "robust.pt")


def test_scores_are_the_fine_tuned_model_s_and_images_are_unchanged(checkpoint):
    defense = RobustMetric(checkpoint).eval()
    base = DefaultModel().eval()
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    scores, certs = defense.score(base, x)
    state = torch.load(checkpoint, weights_only=True)["state_dict"]
    tuned = DefaultModel()
    tuned.load_state_dict(state)
    with torch.no_grad():
        assert torch.allclose(scores, tuned.eval()(x)) and not torch.allclose(scores, base(x), atol=1e-3)
    assert certs == [{}, {}, {}] and torch.equal(defense(x), x)
    assert defense.metric_problem(metric_spec("default", {})) is None


def test_an_adaptive_attack_differentiates_the_fine_tuned_model(checkpoint):
    defense = RobustMetric(checkpoint).eval()
    base = DefaultModel().eval()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)).requires_grad_(True)

    def grad(model):
        (g,) = torch.autograd.grad(model(x).sum(), x)
        return g

    through = grad(DefendedMetric(base, defense))
    assert torch.allclose(through, grad(defense.model)) and not torch.allclose(through, grad(base))


def test_another_metric_is_named_as_the_reason(checkpoint):
    other = metric_spec("default", {"weights": str(WEIGHTS)})  # the same file, but another matrix entry
    reason = RobustMetric(checkpoint).metric_problem(other)
    assert reason is not None and "fine-tuned from metric default" in reason and other.label in reason


def test_missing_corrupt_and_foreign_checkpoints_name_the_file(tmp_path):
    with pytest.raises(MissingWeightsError, match="absent.pt") as exc:
        RobustMetric(tmp_path / "absent.pt")
    assert "benchmark.training.robust_metric" in str(exc.value)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="bad.pt"):
        RobustMetric(bad)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(ConfigError, match="foreign.pt.*not a robust-metric checkpoint"):
        RobustMetric(foreign)


@pytest.mark.slow
def test_a_matrix_row_of_its_base_metric_and_the_leaderboard(tmp_path, image_folder, checkpoint):
    tables = f"""
[[metrics]]
name = "default"
[[metrics]]
name = "default"
weights = "{WEIGHTS}"
[[attacks]]
name = "pgd"
eps = "4/255"
steps = 2
adaptive = true
[[defenses]]
name = "identity"
[[defenses]]
name = "robust_metric"
weights = "{checkpoint}"
"""
    cfg = folder_config(tmp_path, "robust", image_folder, tables, limit=4, mos=True)
    assert main(["run", str(cfg), "--no-progress"]) == 0
    run = tmp_path / "runs" / "robust"
    summary = pd.read_csv(run / "summary.csv")
    robust = summary[summary["defense"].str.startswith("robust_metric")]
    assert list(robust["metric"]) == ["default"]  # the other entry's cell is skipped, with the reason
    skipped = json.loads((run / "skipped.json").read_text())
    assert any("fine-tuned from metric default" in s["reason"] for s in skipped)
    # the adaptive attack attacked the fine-tuned model: its records are the defense's scores of x'
    records = pd.read_parquet(run / "records.parquet") if (run / "records.parquet").exists() else \
        pd.read_csv(run / "records.csv")
    rec = records[(records["defense"].str.startswith("robust_metric")) & (records["metric"] == "default")]
    assert len(rec) == 4 and (rec["score_adv_def"] > rec["score_def"]).mean() >= 0.75
    site = tmp_path / "site"
    assert main(["leaderboard", str(run), "-o", str(site)]) == 0
    board = pd.read_csv(site / "leaderboard.csv")
    row = board[board["defense"].str.startswith("robust_metric")]
    assert len(row) == 1 and row["metric"].iloc[0] == "default" and not bool(row["baseline"].iloc[0])
    assert "robust_metric" in (site / "index.html").read_text()
