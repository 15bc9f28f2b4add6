"""The metric contract (:class:`helpers.contracts.MetricContract`), run on every registered metric that can be
built here: those whose weights are not on this machine are skipped with the file named (their own tests load
random weights in the official layouts, tests/metrics/)."""
from __future__ import annotations

import pytest

from helpers.contracts import MetricContract
from helpers.plugins import registered


class TestEveryMetric(MetricContract):
    @pytest.fixture(params=registered("metrics"), ids=str)
    def target(self, request):
        return request.param
