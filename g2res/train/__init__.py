"""K-fold training: folds, loop, checkpoints, metrics and plots."""
