"""Signal conditioning: PSD estimation, whitening, bandpass (batched torch modules).

Pure functions on ``(..., detector, time)`` tensors plus thin ``nn.Module`` wrappers
holding fixed arrays (windows, responses, inverse ASDs) as buffers, so they run on
any device and chain with ``nn.Sequential``. Numpy/scipy references live in
:mod:`g2res.signal.reference`.
"""

from g2res.signal.filters import Bandpass, bandpass, butterworth_response, highpass, lowpass
from g2res.signal.gate import Gate, gate
from g2res.signal.normalise import RobustNormalise, robust_normalise
from g2res.signal.psd import PSDFileError, Welch, asd, load_psd, median_bias, welch
from g2res.signal.whiten import (
    Conditioner,
    Whiten,
    WhitenBandpass,
    interpolate_psd,
    inverse_asd,
    whiten,
    whitening_transfer,
)
from g2res.signal.windows import get_window, window_array

__all__ = [
    "Bandpass",
    "Conditioner",
    "Gate",
    "PSDFileError",
    "RobustNormalise",
    "Welch",
    "Whiten",
    "WhitenBandpass",
    "asd",
    "bandpass",
    "gate",
    "butterworth_response",
    "get_window",
    "highpass",
    "interpolate_psd",
    "inverse_asd",
    "load_psd",
    "lowpass",
    "median_bias",
    "robust_normalise",
    "welch",
    "whiten",
    "whitening_transfer",
    "window_array",
]
