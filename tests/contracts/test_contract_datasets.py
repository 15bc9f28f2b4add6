"""The dataset contract, checked for every registered dataset: a required folder that is missing is a
configuration error naming the key (at ``validate``, before any data is read); a dataset that can be built
here yields uint8 RGB images with unique ids and MOS within its declared scale."""
from __future__ import annotations

import numpy as np
import pytest

from benchmark.cli import main

from conftest import write_config
from contract_helpers import build, builtin, required

NAMES = builtin("datasets")


@pytest.mark.parametrize("name", NAMES)
def test_missing_folder_is_a_config_error(name, tmp_path, capsys):
    if "root" not in required("datasets", name):
        pytest.skip("reads no folder")
    cfg = write_config(tmp_path, f"""
[run]
output_dir = "{tmp_path / 'runs'}"
[[datasets]]
name = "{name}"
root = "absent"
[[metrics]]
name = "default"
[[attacks]]
name = "fgsm"
[[defenses]]
name = "identity"
""")
    assert main(["validate", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "datasets[0].root" in err and "absent" in err, err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("name", NAMES)
def test_yields_rgb_images_with_unique_ids(name):
    kwargs = {"limit": 4, "size": 176} if name == "synthetic" else {}
    ds = build("datasets", name, **kwargs)
    ids = ds.ids()
    assert len(ids) == len(set(ids)) >= 1
    for i in ids[:4]:
        s = ds.load(i)
        assert s.image_id == i
        assert s.image.dtype == np.uint8 and s.image.ndim == 3 and s.image.shape[2] == 3
        if s.mos is not None and ds.mos_range is not None:
            lo, hi = ds.mos_range
            assert lo <= s.mos <= hi
