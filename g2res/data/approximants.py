"""Which lalsimulation approximant renders each source of a waveform pool.

A pool (:mod:`g2res.data.pool`) may mix time-domain approximants, e.g. IMRPhenomXPHM
(precessing), IMRPhenomD and SEOBNRv4_opt (aligned spins), with weights (normalised to
probabilities), so a network trained on it does not learn one model's quirks.

Source ``index`` of a pool of ``seed`` uses approximant ``k`` drawn from its own generator
(:func:`approximant_rng`), on a stream apart from the one of its parameters
(:func:`g2res.data.pool.source_rng`): its masses, spins and angles are those a
single-approximant pool of the same seed draws, with the in-plane spins zeroed when the
chosen model is not precessing (:func:`g2res.data.waveforms.draw_parameters` makes the
same draws either way). A pool of one approximant draws nothing here, so its bytes are
those of a pool made before mixes existed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from g2res.data.waveforms import _approximant, is_precessing

__all__ = ["ApproximantMix", "parse_approximants", "approximant_rng"]


def approximant_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of the approximant choice of pool source ``index`` for ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2, int(index), 1)))


@dataclass(frozen=True)
class ApproximantMix:
    """Approximant names, their probabilities (sum 1) and whether each precesses."""

    names: tuple[str, ...]
    weights: tuple[float, ...]
    precessing: tuple[bool, ...]

    @property
    def mixed(self) -> bool:
        """True for more than one approximant (params.csv then names each source's)."""
        return len(self.names) > 1

    def choose(self, seed: int, index: int) -> int:
        """Position in ``names`` of the approximant of source ``index`` (0 when single)."""
        if not self.mixed:
            return 0
        u = approximant_rng(seed, index).uniform()
        k = int(np.searchsorted(np.cumsum(self.weights), u, side="right"))
        return min(k, len(self.names) - 1)

    def choices(self, seed: int, indices) -> np.ndarray:
        """Positions in ``names`` (n,) int for the sources ``indices`` (n,)."""
        return np.array([self.choose(seed, i) for i in np.asarray(indices).ravel()], dtype=int)


def parse_approximants(
    names: str | Sequence[str], weights: Sequence[float] | None = None
) -> ApproximantMix:
    """Check approximant ``names`` against lalsimulation and ``weights`` (default equal).

    Raises ValueError naming the unknown approximant, a repeated one, or weights that are
    not one positive finite number per approximant.
    """
    names = (names,) if isinstance(names, str) else tuple(str(n) for n in names)
    if not names:
        raise ValueError("no approximant given: name at least one (e.g. IMRPhenomXPHM)")
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"approximant {name!r} is given twice; weight it instead")
        _approximant(name)  # ValueError naming it when lalsimulation does not know it
    if weights is None:
        weights = [1.0] * len(names)
    weights = [float(w) for w in weights]
    if len(weights) != len(names):
        raise ValueError(
            f"{len(weights)} approximant weights {weights} for {len(names)} approximants "
            f"{list(names)}: give one weight per approximant"
        )
    for name, w in zip(names, weights):
        if not (math.isfinite(w) and w > 0):
            raise ValueError(f"approximant weight {w} of {name}: need a positive number")
    total = sum(weights)
    return ApproximantMix(
        names, tuple(w / total for w in weights), tuple(is_precessing(n) for n in names)
    )
