"""Window functions as torch tensors (built once with scipy, then kept as buffers)."""

from __future__ import annotations

import numpy as np
import scipy.signal
import torch

# Names accepted for "no window"; scipy calls it boxcar.
_NO_WINDOW = {None, "none", "boxcar", "rectangular", "rect"}


def window_array(
    name: str | None, n: int, alpha: float = 0.2, *, fftbins: bool = False
) -> np.ndarray:
    """A float64 window of ``n`` samples as a numpy array.

    ``name`` is any scipy window name (``tukey``, ``hann``, ``hamming``, ``blackman``,
    ...) or ``none``/``boxcar``. ``alpha`` is the Tukey shape parameter (fraction of
    the window inside the cosine tapers). ``fftbins=False`` gives a symmetric window
    (a data taper that reaches zero at both ends); ``True`` the periodic form that
    scipy's ``welch`` uses for spectral segments.
    """
    if n < 1:
        raise ValueError(f"window length must be positive, got {n}")
    key = name.lower() if isinstance(name, str) else name
    if key in _NO_WINDOW:
        return np.ones(n)
    if key == "tukey":
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"Tukey alpha must be in [0, 1], got {alpha}")
        return scipy.signal.get_window(("tukey", alpha), n, fftbins=fftbins).astype(np.float64)
    try:
        return scipy.signal.get_window(key, n, fftbins=fftbins).astype(np.float64)
    except ValueError as exc:
        raise ValueError(f"unknown window {name!r}: {exc}") from None


def get_window(
    name: str | None,
    n: int,
    alpha: float = 0.2,
    *,
    fftbins: bool = False,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """:func:`window_array` as a ``(n,)`` tensor of ``dtype`` on ``device``."""
    return torch.as_tensor(
        window_array(name, n, alpha, fftbins=fftbins), dtype=dtype, device=device
    )
