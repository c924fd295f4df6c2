"""The bank-marginalised statistic: evidence summed over every template of a bank.

:class:`g2res.baselines.matched_filter.MatchedFilter` maximises each template's network
statistic over time; the best template keeps one template's evidence and pays the bank's
look-elsewhere cost in noise. :func:`marginal_statistic` averages the likelihood ratio
``exp(rho^2 / 2)`` over the bank instead (the ``marginal`` column of the filter).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["marginal_statistic"]


def marginal_statistic(rho2: np.ndarray | torch.Tensor) -> np.ndarray:
    """Bank-marginalised log likelihood ratio of squared network statistics ``rho2``
    (batch, T): ``log((1/T) sum_T exp(rho2_T / 2))`` (batch,).

    ``exp(rho^2 / 2)`` is the likelihood ratio of a template whose amplitude and phase are
    maximised in each detector; averaging it over the bank (a prior uniform over the
    templates, which the placement spreads evenly in match) instead of taking the best
    template adds up the evidence of every template a signal matches, where the maximum
    keeps one and pays for the bank's look-elsewhere with noise. A loud sample is ruled
    by its best template (``~ rho_max^2 / 2 - log T``).
    """
    rho2 = torch.as_tensor(rho2)
    if rho2.dim() != 2 or rho2.shape[1] == 0:
        raise ValueError(
            f"rho2 must be (batch, templates) with templates >= 1, got {tuple(rho2.shape)}"
        )
    lse = torch.logsumexp(rho2.to(torch.float64) / 2.0, dim=1)
    return (lse - np.log(rho2.shape[1])).cpu().numpy()
