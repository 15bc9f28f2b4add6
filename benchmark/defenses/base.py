"""The defense contract: an ``nn.Module`` with ``forward(x, *, generator=None) -> x_purified``.

Every capability the harness reads is declared here, with its default (subclasses override the
attribute, never the harness a name):

- ``stochastic`` (False): uses the generator; the runner gives the clean and the attacked branch the same
  seed, so ``D(x)`` and ``D(x')`` use the same draws.
- ``differentiable`` (True): gradients flow through it; otherwise adaptive attacks use ``surrogate(x)``,
  the differentiable approximation BPDA backpropagates through (identity by default, Athalye et al. 2018).
- ``baseline`` (False): the defense is the undefended reference (``identity``), shown as the reference
  row of reports and never ranked.
- ``wraps_metric`` (False): the defense scores through the metric itself (randomised smoothing):
  the runner calls ``score(metric, x, generator=...) -> (scores, certificates)`` instead of purifying.
- ``changes_geometry`` (False): the defense moves pixels (flip, crop, rotation, a resize to another
  size); ``align(x, generator=...)`` brings the clean image into its output's geometry, with the same
  random draws as ``forward`` given a generator in the same state, so full-reference quality can be
  measured against ``A(x)`` as well as against ``x`` (docs/measures.md#defense).
- ``replaces_metric`` (False): the defense is another version of the metric (a fine-tuned copy,
  ``robust_metric``); it also ``wraps_metric`` (its ``score`` is the replacement's), ``forward`` is the
  identity, ``defended_metric(metric)`` returns the replacement as a module (what an adaptive attack
  differentiates through), and ``metric_problem(spec)`` says why it cannot stand for the cell's metric
  (a ``PluginSpec``), or None; the runner skips such cells with that reason.

``validate`` checks a defense's parameters by building it (``check_params``, :mod:`benchmark.params`: cheap,
and its constructor checks its ranges); ``check_files`` is what a defense says about its files without
allocating (built on the meta device), which ``validate`` asks when a file it names is missing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..params import build_on_meta, checked_by_building, expect_file


class Defense(nn.Module):
    stochastic: bool = False
    differentiable: bool = True
    baseline: bool = False
    wraps_metric: bool = False
    changes_geometry: bool = False
    replaces_metric: bool = False

    @classmethod
    def check_params(cls, params: dict[str, Any], base: Path) -> dict[str, Any]:
        """``validate``: the defense is built (:func:`~benchmark.params.checked_by_building`), so a value its
        constructor refuses is a config error naming the key before any work. Subclasses that check more call
        ``super()``."""
        return checked_by_building(cls, params)

    @classmethod
    def check_files(cls, params: dict[str, Any]) -> None:
        """The defense built on the meta device: its checkpoint read safely and checked, nothing allocated; a
        missing file is a :class:`~benchmark.errors.MissingWeightsError` saying where its release lives."""
        build_on_meta(lambda: cls(**params))

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def surrogate(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable stand-in used by BPDA for non-differentiable defenses (identity by default)."""
        return x

    def score(self, metric, x: torch.Tensor, *, generator: torch.Generator | None = None
              ) -> tuple[torch.Tensor, list[dict]]:
        """B scores of the defended metric and one certificate dict per image (``wraps_metric`` defenses).

        Certificate keys other than ``smoothed`` become record columns (``cert_lo``, ``cert_hi``, ...)."""
        raise NotImplementedError(f"{type(self).__name__} does not score through the metric (wraps_metric is False)")

    def defended_metric(self, metric):
        """The module that replaces ``metric`` (``replaces_metric`` defenses): adaptive attacks differentiate it."""
        raise NotImplementedError(f"{type(self).__name__} does not replace the metric (replaces_metric is False)")

    def metric_problem(self, spec) -> str | None:
        """Why this defense cannot stand for the metric of ``spec`` (``replaces_metric`` defenses), or None."""
        return None

    def align(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``A(x)``: the clean image in the geometry of ``forward``'s output, drawn as ``forward`` draws
        from a generator in the same state (the identity for defenses that do not move pixels)."""
        return x


class GeometricDefense(Defense):
    """A defense that is a pure geometric transform (flip, crop, rotation): ``draw`` takes its random
    parameters from the generator once, ``apply`` moves the pixels. ``forward`` and ``align`` are the same
    transform, ``A(x) = D(x)``, so given generators in the same state they make identical draws."""

    changes_geometry = True

    def draw(self, x: torch.Tensor, generator: torch.Generator | None):
        """The transform's random parameters for the batch ``x`` (None for a deterministic transform)."""
        return None

    def apply(self, x: torch.Tensor, params) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.apply(x, self.draw(x, generator))

    def align(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.apply(x, self.draw(x, generator))


class CheckpointDefense(Defense):
    """A defense whose network is loaded from a local checkpoint, the parameter ``weights``: ``validate`` checks
    that the file exists (and the deep check opens it) before any work."""

    @classmethod
    def check_params(cls, params: dict[str, Any], base: Path) -> dict[str, Any]:
        expect_file(params, "weights")
        return super().check_params(params, base)

