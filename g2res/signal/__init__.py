"""Signal conditioning: PSD estimation, whitening, bandpass (batched torch modules)."""
