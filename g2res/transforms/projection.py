"""Antenna patterns F+, Fx and arrival delays of H1, L1, V1 for a sky position, in torch
(the lal detector tensors and positions as buffers); step 2 of :mod:`g2res.transforms.inject`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from g2res import DETECTORS

C_SI = 299792458.0  # m/s
EARTH_RADIUS = 6.4e6  # m, a bound on every detector's distance from the geocentre
MAX_DELAY = EARTH_RADIUS / C_SI  # s, largest |arrival - geocentre arrival| (~21 ms)
OMEGA_EARTH = 7.292115855e-5  # rad/s, Earth's sidereal rotation rate
GPS_REFERENCE = 1238166018.0  # s, as the simulator; ra uniform makes the choice irrelevant


def _gmst(gps: float) -> float:
    import lal

    return float(lal.GreenwichMeanSiderealTime(lal.LIGOTimeGPS(gps)))


class DetectorProjection(nn.Module):
    """Antenna patterns and geocentre delays of ground detectors, batched in torch.

    Buffers: ``response`` (d, 3, 3) lal detector tensors, ``location`` (d, 3) m
    (Earth-fixed). Angles in rad; ``gmst`` is the Greenwich mean sidereal time (rad).
    Same formulas as lal's ``ComputeDetAMResponse`` and ``TimeDelayFromEarthCenter``.
    """

    def __init__(self, detectors: Sequence[str] = DETECTORS):
        super().__init__()
        import lal

        self.detectors = tuple(detectors)
        dets = [lal.cached_detector_by_prefix[d] for d in self.detectors]
        self.register_buffer(
            "response", torch.tensor(np.stack([d.response for d in dets]), dtype=torch.float64)
        )
        self.register_buffer(
            "location", torch.tensor(np.stack([d.location for d in dets]), dtype=torch.float64)
        )

    def _basis(self, ra, dec, psi, gmst):
        gha = gmst - ra
        cg, sg = torch.cos(gha), torch.sin(gha)
        cd, sd = torch.cos(dec), torch.sin(dec)
        cp, sp = torch.cos(psi), torch.sin(psi)
        x = torch.stack([-cp * sg - sp * cg * sd, -cp * cg + sp * sg * sd, sp * cd], -1)
        y = torch.stack([sp * sg - cp * cg * sd, sp * cg + cp * sg * sd, cp * cd], -1)
        return x, y

    def antenna_patterns(self, ra, dec, psi, gmst) -> tuple[torch.Tensor, torch.Tensor]:
        """F+ and Fx, each (b, d), for ra, dec, psi (b,) rad and gmst (rad, scalar or (b,))."""
        ra, dec, psi = (torch.as_tensor(v, dtype=torch.float64, device=self.response.device)
                        for v in (ra, dec, psi))  # fmt: skip
        gmst = torch.as_tensor(gmst, dtype=torch.float64, device=ra.device)
        x, y = self._basis(ra, dec, psi, gmst)
        d = self.response
        fplus = torch.einsum("bi,dij,bj->bd", x, d, x) - torch.einsum("bi,dij,bj->bd", y, d, y)
        fcross = torch.einsum("bi,dij,bj->bd", x, d, y) + torch.einsum("bi,dij,bj->bd", y, d, x)
        return fplus, fcross

    def time_delays(self, ra, dec, gmst) -> torch.Tensor:
        """Arrival minus geocentre arrival time (b, d) in s."""
        ra, dec = (torch.as_tensor(v, dtype=torch.float64, device=self.response.device)
                   for v in (ra, dec))  # fmt: skip
        gha = torch.as_tensor(gmst, dtype=torch.float64, device=ra.device) - ra
        ehat = torch.stack(
            [torch.cos(dec) * torch.cos(gha), -torch.cos(dec) * torch.sin(gha), torch.sin(dec)],
            -1,
        )
        return -(ehat @ self.location.T) / C_SI
