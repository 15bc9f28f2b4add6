"""Shared pieces of the family contract tests, kept under this name for the modules that import them from here
(test_contract_attacks.py). They live in :mod:`helpers.plugins`, importable from every test folder, beside the
contract base classes of :mod:`helpers.contracts`."""
from __future__ import annotations

from helpers.plugins import (SMALL, build, builtin, default_metric, gen, images, registered, required,  # noqa: F401
                             small_kwargs, takes)
