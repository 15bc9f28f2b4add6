"""The dataset contract (:class:`helpers.contracts.DatasetContract`), run on every registered dataset: the
folder dataset on a small folder made here, the database loaders on their missing folder only (their own
tests, tests/datasets/, build each database's official layout)."""
from __future__ import annotations

from dataclasses import replace

import pytest

from helpers.contracts import DatasetContract
from helpers.plugins import registered

# the synthetic dataset's labels (MS-SSIM) need images of at least 176 pixels
PARAMS = {"synthetic": {"limit": 4, "size": 176}}
PLUGINS = [replace(p, params=PARAMS.get(p.name)) for p in registered("datasets")]


class TestEveryDataset(DatasetContract):
    @pytest.fixture(params=PLUGINS, ids=str)
    def target(self, request):
        return request.param
