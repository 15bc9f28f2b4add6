"""The README's quickstart, run as a user runs it (slow: about a minute on 2 CPU cores)."""
from __future__ import annotations

import pandas as pd
import pytest

from benchmark.cli import main

from conftest import CNNIQA_WEIGHTS, example_copy


@pytest.mark.slow
def test_quickstart_pgd_beats_fgsm_and_jpeg_cuts_the_gain(tmp_path):
    # the examples as a user has them, with CNNIQA-LIVE put where quickstart.toml says (when this checkout has it)
    assert main(["run", str(example_copy(tmp_path) / "quickstart.toml"), "--output-dir", str(tmp_path),
                 "--no-progress"]) == 0
    run = tmp_path / "quickstart"
    s = pd.read_csv(run / "summary.csv")
    assert (run / "report.html").is_file() and (run / "records.csv").is_file()
    metrics = set(s["metric"])
    assert "default" in metrics
    if CNNIQA_WEIGHTS.exists():
        assert any(m.startswith("cnniqa") for m in metrics)
    for metric in metrics:
        t = s[s["metric"] == metric].set_index(["attack", "defense"])
        pgd, fgsm, ada = "pgd(eps=4/255)", "fgsm(eps=4/255)", "pgd(eps=4/255)+adaptive(EOT4)"
        assert t.loc[(pgd, "identity"), "abs_gain"] > t.loc[(fgsm, "identity"), "abs_gain"], metric
        assert t.loc[(pgd, "jpeg"), "robust_abs_gain"] < t.loc[(pgd, "identity"), "robust_abs_gain"], metric
        # adaptive by default: the PGD through the flip keeps the undefended gain, and the flip is not ranked first
        assert t.loc[(ada, "flip"), "defended_gain"] >= 0.9 * t.loc[(pgd, "identity"), "defended_gain"], metric
        assert t.loc[(ada, "flip"), "rank"] != 1, metric
        assert t.loc[(ada, "pixel_deflection(deflections=500)"), "eot_samples"] == 4, metric
    html = (run / "report.html").read_text()
    assert "Indicative ranking: 8 images" in html and (run / "report.html").stat().st_size < 5_000_000
