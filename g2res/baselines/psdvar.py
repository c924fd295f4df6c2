"""PSD variation: each sample's own noise level and tilt, divided out of its whitened data.

The bank whitens every sample with one PSD (the cache's average, ``--psd``). When a
detector's PSD drifts between samples (``g2res simulate --psd-drift``; real strain from
minute to minute) the whitened noise of a sample is no longer at unit variance, and a
detector whose noise is 20% above the average puts 20% more power into every template:
the network SNR of noise grows and the false alarms with it. PyCBC's answer is to measure
the PSD variation of each stretch and rescale its SNR (Mozzon et al. 2020, ``psd_var``).
Here each detector series of a sample is given a scale and a power-law tilt fitted to its
own median Welch PSD relative to the filter PSD (the fit of
:class:`g2res.signal.normalise.SpectralNormalise`: medians over 0.5-s segments, robust to a
glitch or a chirp, in 16 bands of the filter's band), and its whitened spectrum is divided
by the square root of the fit. Noise then has E|d~|^2 = 2 per frequency again, whatever its
level, and a signal's SNR is measured against the noise it sits in.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["PsdVariation"]


class PsdVariation:
    """Per-sample PSD correction of whitened spectra.

    ``band`` (f,) bool: the frequencies the filter uses (its whitening weight is non-zero
    there), on the rfft grid of ``n_samples`` at ``sample_rate`` Hz; ``taper_alpha``: the
    Tukey taper of the data, whose ends are left out of the fit; ``order`` 1 fits a scale
    and a tilt, 0 a scale only.
    """

    def __init__(
        self,
        band: np.ndarray,
        sample_rate: float,
        n_samples: int,
        taper_alpha: float,
        order: int = 1,
    ):
        from g2res.signal.normalise import SpectralNormalise

        freqs = np.fft.rfftfreq(int(n_samples), 1.0 / float(sample_rate))
        band = np.asarray(band, dtype=bool)
        if band.shape != freqs.shape or not band.any():
            raise ValueError(f"psd variation: band must be a non-empty ({freqs.size},) mask")
        self.n_samples, self.band = int(n_samples), band
        self.fit = SpectralNormalise(
            sample_rate=sample_rate,
            n_time=self.n_samples,
            fmin=float(freqs[band].min()),
            fmax=float(freqs[band].max()),
            filter_order=None,  # the filter's band is sharp
            window_alpha=taper_alpha,
            order=order,
        )

    def __call__(self, spec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Corrected spectra and the fitted variation.

        ``spec`` (batch, 3, f) complex whitened, tapered spectra scaled so that noise of
        the filter PSD has E|.|^2 = 2 per frequency in the band. Returns the spectra
        divided by sqrt(P / P0) (same shape) and the variation of each series (batch, 3):
        the geometric mean over the band of its noise power over the filter PSD's (1 for a
        sample whose PSD is the filter's).
        """
        # White noise of unit variance has E|rfft|^2 = n per bin: the fit's reference.
        y = np.fft.irfft(spec * np.sqrt(self.n_samples / 2.0), n=self.n_samples, axis=-1)
        with torch.no_grad():
            level = self.fit.log_level(torch.as_tensor(y, dtype=torch.float32)).double().numpy()
        variation = np.exp(level[..., self.band].mean(-1))
        return spec * np.exp(-0.5 * level), variation
