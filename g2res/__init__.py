"""g2res: deep residual networks for gravitational-wave detection in G2Net-style data."""

__version__ = "0.1.0"

DETECTORS = ("H1", "L1", "V1")
SAMPLE_RATE = 2048  # Hz, G2Net sampling rate
DURATION = 2.0  # s, G2Net sample length
N_SAMPLES = 4096  # time samples per detector
# Tukey shape parameter of the data taper before whitening (preprocess, injection, scan):
# 0.1 = 0.1-s ramps on a 2-s window, so mergers up to 1.9 s keep their full amplitude
# (0.2 cut a merger at 1.9 s to ~60% of its SNR).
TAPER_ALPHA = 0.1
