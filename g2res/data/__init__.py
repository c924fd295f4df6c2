"""Data: the G2Net layout, the simulator, validation and the preprocessed cache."""
