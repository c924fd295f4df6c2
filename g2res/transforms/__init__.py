"""Front-ends (CQT, STFT, identity) and training augmentations, as batched modules."""
