"""Fixtures of the baseline tests."""

from __future__ import annotations

import pytest

from g2res.data.waveforms import BBHParameters


@pytest.fixture(scope="session")
def binary():
    """``binary(merger_time, snr)``: the BBHParameters of the 24 + 17 Msun aligned-spin
    binary (spins 0.3, -0.2) that the bank tests inject, merging at ``merger_time`` s
    (geocentre) at network SNR ``snr``."""

    def make(merger_time: float, snr: float) -> BBHParameters:
        return BBHParameters(
            24.0, 17.0, 0.0, 0.0, 0.3, 0.0, 0.0, -0.2,
            1.2, 0.4, 0.7, 0.9, 2.1, merger_time, snr,
        )  # fmt: skip

    return make
